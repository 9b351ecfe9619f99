using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The build-time memory estimate (the generated <c>MemoryEstimate</c>, the numbers SW0014 checks and the plan report
/// prints) against what a real engine holds for the same model and config (<see cref="TrainingEngine.Memory"/>), for
/// the unpipelined TinyGpt at ZeRO 0–3. The CPU engine computes in fp32, so the rows for 4-byte working copies apply.
/// The config matches the estimate's stated assumptions: [Model]'s defaults (micro-batch 1, one data-parallel rank),
/// fp16 storage (mixed precision, fp32 masters), no ZeRO-3 parameter kept whole and no prefetch buffer.
/// </summary>
[TestClass]
public sealed class MemoryEstimateTests
{
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void EstimateIsWithinTenPercentOfWhatTheEngineHolds(int stage)
    {
        var config = DeepSpeedConfig.Parse($$"""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "fp16": { "enabled": true },
              "zero_optimization": { "stage": {{stage}}, "stage3_param_persistence_threshold": 0, "stage3_prefetch_bucket_size": 0 } }
            """).Config;
        var measured = InProcessGroup.Run(1, communicator =>
        {
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
            return TrainingEngine.Initialize(program, config, communicator).Memory;
        }, TimeSpan.FromMinutes(1))[0];

        var rows = TinyGpt.MemoryEstimate.Where(r => r.ZeroStage == stage && r.WorkingBytes == sizeof(float)).ToList();
        Assert.AreEqual(1, rows.Count, "one estimate per ZeRO stage for the unpipelined model");
        var e = rows[0];
        Assert.AreEqual(0, e.PipelineStage);
        long estimate = e.Parameters + e.Gradients + e.MasterWeights + e.OptimizerStates + e.Activations + e.Buffers;
        double error = Math.Abs(estimate - measured.Total) / (double)measured.Total;

        Console.WriteLine($"ZeRO {stage}: estimate {MemoryReport.Format(estimate)} (params {MemoryReport.Format(e.Parameters)} grads {MemoryReport.Format(e.Gradients)} " +
                          $"master {MemoryReport.Format(e.MasterWeights)} optim {MemoryReport.Format(e.OptimizerStates)} act {MemoryReport.Format(e.Activations)} buf {MemoryReport.Format(e.Buffers)}); " +
                          $"engine {MemoryReport.Format(measured.Total)} ({measured.Describe()}); error {100 * error:0.00}%");
        Assert.IsTrue(error <= 0.10, $"ZeRO {stage}: estimate {estimate:N0} B vs engine {measured.Total:N0} B ({100 * error:0.0}% apart)");
    }
}
