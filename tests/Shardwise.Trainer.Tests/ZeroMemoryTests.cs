using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Zero;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// Model-state bytes per rank, measured from the buffers the engine actually allocated, against the ZeRO paper's
/// formulas in fp16 mixed precision (16-bit parameters and gradients, fp32 masters and Adam moments):
/// stage 0 = 16Ψ, stage 1 = 4Ψ + 12Ψ/N, stage 2 = 2Ψ + 14Ψ/N, stage 3 = 16Ψ/N, within 1%, plus declared buffers:
/// the generator-planned pools where a slot's gradient lives until it is reduced (stages 2–3) and where a gathered
/// parameter lives while it is in use (stage 3). The CPU backend's working
/// copies are fp32 in memory; they are counted at the 16-bit size a GPU holds.
/// </summary>
[TestClass]
public sealed class ZeroMemoryTests
{
    [TestMethod]
    public void ModelStateBytesPerRankMatchTheFormulas()
    {
        long psi = TinyGpt.ParameterLayout.TotalElements;
        Console.WriteLine($"Ψ = {psi:N0} elements (flat layout, alignment included)");
        Console.WriteLine("| stage | N | measured bytes/rank | formula | ratio | declared gradient pool |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (int stage in new[] { 0, 1, 2, 3 })
        {
            foreach (int ranks in new[] { 1, 2, 4 })
            {
                var measured = InProcessGroup.Run(ranks, communicator =>
                {
                    var config = DeepSpeedConfig.Parse($$"""
                        { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
                          "fp16": { "enabled": true }, "zero_optimization": { "stage": {{stage}}, "stage3_param_persistence_threshold": 0 } }
                        """).Config;
                    var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
                    var engine = TrainingEngine.Initialize(program, config, communicator);
                    const long half = 2, single = 4;
                    // At stage 2 the program's gradient arena is the streaming pool (a declared buffer); the rank's
                    // gradient state is its reduced pieces, one per owned element.
                    long gradients = stage >= 2 ? engine.OwnedElements : program.Gradients.Length;
                    long pool = stage >= 2 ? program.Gradients.Length : 0;
                    // At stage 3 the parameter arena is the gather pool (declared); the rank's parameters are its pieces.
                    long parameters = stage == 3 ? engine.OwnedElements : program.Parameters.Length;
                    if (stage == 3) pool += program.Parameters.Length;
                    long bytes = half * parameters + half * gradients
                               + single * engine.MasterWeights.Length
                               + single * (engine.Optimizer.State.ExpAvg.LongLength + engine.Optimizer.State.ExpAvgSq.LongLength);
                    return (Bytes: bytes, Pool: pool * half);
                }, TimeSpan.FromMinutes(1));

                double formula = stage switch { 0 => 16.0 * psi, 1 => 4.0 * psi + 12.0 * psi / ranks, 2 => 2.0 * psi + 14.0 * psi / ranks, _ => 16.0 * psi / ranks };
                foreach (var (bytes, _) in measured)
                {
                    Assert.IsTrue(Math.Abs(bytes - formula) <= 0.01 * formula, $"stage {stage}, N={ranks}: {bytes:N0} B vs {formula:N0} B");
                }
                if (stage >= 2) Assert.IsTrue(measured[0].Pool < 0.25 * 2 * psi * (stage == 3 ? 2 : 1), "the streaming pools must be far smaller than full buffers");
                Console.WriteLine($"| {stage} | {ranks} | {measured[0].Bytes:N0} | {formula:N0} | {measured[0].Bytes / formula:F4} | {measured[0].Pool:N0} |");
            }
        }
    }
}

/// <summary><c>plan</c> predicts, before anything is allocated, exactly the bytes per rank a real engine then holds.</summary>
[TestClass]
public sealed class MemoryPlanTests
{
    [TestMethod]
    [DataRow(0, false)]
    [DataRow(1, false)]
    [DataRow(1, true)]
    [DataRow(2, false)]
    [DataRow(3, false)]
    [DataRow(3, true)]
    public void PredictionEqualsWhatTheEngineAllocates(int stage, bool offload)
    {
        const int ranks = 3; // not a divisor of the layout: exercises the padding of the last partition and pieces
        string json = $$"""
            { "train_micro_batch_size_per_gpu": 2, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "fp16": { "enabled": true },
              "zero_optimization": { "stage": {{stage}}, "stage3_param_persistence_threshold": 300,
                                     "offload_optimizer": { "device": "{{(offload ? "cpu" : "none")}}" } } }
            """;
        var config = DeepSpeedConfig.Parse(json).Config;
        var reports = Shardwise.Distributed.InProcess.InProcessGroup.Run(ranks, communicator =>
        {
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 2);
            var engine = TrainingEngine.Initialize(program, config, communicator);
            return engine.Memory;
        }, TimeSpan.FromMinutes(1));

        for (int rank = 0; rank < ranks; rank++)
        {
            var predicted = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks, rank, workingBytes: sizeof(float));
            Assert.AreEqual(predicted, reports[rank], $"rank {rank}: predicted {predicted.Describe()} but the engine holds {reports[rank].Describe()}");
        }
        Console.WriteLine($"stage {stage}{(offload ? " + offload" : "")}, rank 0 of {ranks}: {reports[0].Describe()}");
    }

    /// <summary>compression_training keeps fp32 masters apart from the compressed working copy, and its scratch and masks.</summary>
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    public void CompressionPredictionEqualsWhatTheEngineAllocates(int stage)
    {
        const int ranks = 2;
        string json = $$"""
            { "train_micro_batch_size_per_gpu": 2, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "zero_optimization": { "stage": {{stage}} },
              "compression_training": {
                "weight_quantization": { "shared_parameters": { "enabled": true },
                  "different_groups": { "wq": { "params": { "start_bits": 8, "target_bits": 8 }, "modules": ["expand"] } } },
                "sparse_pruning": { "shared_parameters": { "enabled": true, "schedule_offset": 0 },
                  "different_groups": { "sp": { "params": { "dense_ratio": 0.5 }, "modules": ["contract"] } } } } }
            """;
        var config = DeepSpeedConfig.Parse(json).Config;
        var reports = Shardwise.Distributed.InProcess.InProcessGroup.Run(ranks, communicator =>
        {
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 2);
            return TrainingEngine.Initialize(program, config, communicator).Memory;
        }, TimeSpan.FromMinutes(1));
        var plain = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
            config with { CompressionTraining = null }, ranks, 0, workingBytes: sizeof(float));
        for (int rank = 0; rank < ranks; rank++)
        {
            var predicted = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks, rank, workingBytes: sizeof(float));
            Assert.AreEqual(predicted, reports[rank], $"rank {rank}: predicted {predicted.Describe()} but the engine holds {reports[rank].Describe()}");
        }
        Console.WriteLine($"stage {stage} with compression, rank 0 of {ranks}: {reports[0].Describe()}");
        Assert.AreEqual(plain.Buffers + 65536 * sizeof(float) + 4 * 65536, reports[0].Buffers, "one 65536-weight scratch and the contract layers' masks");
        // fp32 without compression has no masters apart at stages 0–1 (ZeRO-2 keeps its pieces' either way); with it,
        // this rank's partition of them.
        if (stage < 2) Assert.AreEqual(0, plain.MasterWeights);
        Assert.AreEqual(reports[0].OptimizerStates / 2, reports[0].MasterWeights, "masters: 4 bytes per owned element, as each Adam moment");
    }

    /// <summary>
    /// A GPU job over NCCL averages and gathers ZeRO-1 arenas in place (TrainingEngine, PadForPartitions): its plan holds
    /// no host communication buffers, where the MPI job holds the padded layout and one partition; with offload the
    /// exchange goes through the host either way.
    /// </summary>
    [TestMethod]
    public void ZeroOneOverNcclPlansNoHostExchangeBuffers()
    {
        const int ranks = 3;
        MemoryReport Plan(bool offload, bool nccl)
        {
            var config = DeepSpeedConfig.Parse($$"""
                { "train_micro_batch_size_per_gpu": 2, "bf16": { "enabled": true },
                  "zero_optimization": { "stage": 1, "offload_optimizer": { "device": "{{(offload ? "cpu" : "none")}}" } } }
                """).Config;
            return MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks, rank: 0, workingBytes: 2, exchangesInDeviceMemory: nccl);
        }

        var map = new ShardMap(TinyGpt.ParameterLayout, ranks);
        long exchange = (map.PaddedElements + map.PartitionElements) * sizeof(float);
        Assert.AreEqual(exchange, Plan(offload: false, nccl: false).Buffers - Plan(offload: false, nccl: true).Buffers);
        Assert.AreEqual(Plan(offload: true, nccl: false), Plan(offload: true, nccl: true), "offload exchanges through the host");
        Assert.AreEqual(Plan(offload: false, nccl: false) with { Buffers = 0, Host = 0 }, Plan(offload: false, nccl: true) with { Buffers = 0, Host = 0 },
            "only the buffers and their placement differ");
        var mpi = Plan(offload: false, nccl: false);
        Assert.AreEqual(0, Plan(offload: false, nccl: true).Host, "over NCCL the step and the exchange stay on the device");
        Assert.AreEqual(mpi.MasterWeights + mpi.OptimizerStates + exchange, mpi.Host, "over MPI the host steps and exchanges");
    }
}
