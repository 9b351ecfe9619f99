using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Distributed.InProcess;
using Shardwise.Models.Tests;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// The build-time memory estimate of each pipeline stage (the generated <c>MemoryEstimate</c>, which SW0014 checks and
/// the plan report prints) against what the stage's <see cref="PipelineEngine"/> holds for the same model and config:
/// [Model]'s default assumptions (micro-batch 1, 4p micro-batches, one data replica), fp16 storage with fp32 masters,
/// the CPU engine's 4-byte working copies. Every stage of a p = 2 model and of a p = 2 × t = 2 model within 10%.
/// </summary>
[TestClass]
public sealed class PipelineMemoryEstimateTests
{
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    public void PipelineStagesAreWithinTenPercent(int zero) => Check<PipelineGpt>(zero, Totals(PipelineGpt.MemoryEstimate));

    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    public void PipelineTimesTensorStagesAreWithinTenPercent(int zero) => Check<HybridGpt>(zero, Totals(HybridGpt.MemoryEstimate));

    /// <summary>The generated estimate rows with their total (the property is generated per model, not on the interface).</summary>
    private static (int Stage, int Zero, int WorkingBytes, long Activations, long Total)[] Totals(
        IReadOnlyList<(int PipelineStage, int ZeroStage, int WorkingBytes, long Parameters, long Gradients, long MasterWeights, long OptimizerStates, long Activations, long Buffers)> rows)
        => rows.Select(r => (r.PipelineStage, r.ZeroStage, r.WorkingBytes, r.Activations,
            r.Parameters + r.Gradients + r.MasterWeights + r.OptimizerStates + r.Activations + r.Buffers)).ToArray();

    private static void Check<TModel>(int zero, (int Stage, int Zero, int WorkingBytes, long Activations, long Total)[] estimates)
        where TModel : IPartitionedModelDefinition
    {
        var partition = TModel.Partition;
        int ranks = partition.Pipeline * partition.Tensor;
        var config = DeepSpeedConfig.Parse($$"""
            { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": {{4 * partition.Pipeline}},
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } }, "fp16": { "enabled": true },
              "zero_optimization": { "stage": {{zero}} } }
            """).Config;
        var measured = InProcessGroup.Run(ranks, world =>
        {
            using var groups = ParallelGroups.Create(world, partition);
            var stage = TModel.CompileStage<float>(groups.Coordinates.Stage, new CpuOps<float>(), 1);
            var engine = new PipelineEngine(stage, config, groups);
            return (groups.Coordinates.Stage, engine.Memory);
        }, TimeSpan.FromMinutes(1));

        foreach (var (stage, memory) in measured)
        {
            var e = estimates.Single(r => r.Stage == stage && r.Zero == zero && r.WorkingBytes == sizeof(float));
            long estimate = e.Total;
            double error = Math.Abs(estimate - memory.Total) / (double)memory.Total;
            Console.WriteLine($"{typeof(TModel).Name} ZeRO {zero} stage {stage}: estimate {MemoryReport.Format(estimate)} " +
                              $"(act {MemoryReport.Format(e.Activations)}), engine {MemoryReport.Format(memory.Total)} ({memory.Describe()}); error {100 * error:0.00}%");
            Assert.IsTrue(error <= 0.10, $"{typeof(TModel).Name} ZeRO {zero} stage {stage}: estimate {estimate:N0} B vs engine {memory.Total:N0} B ({100 * error:0.0}% apart)");
        }
    }
}
