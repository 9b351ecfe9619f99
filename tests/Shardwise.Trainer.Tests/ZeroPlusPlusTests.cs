using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Zero;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// ZeRO++ on ZeRO-3, ranks as threads: hpZ (zero_hpz_partition_size) trains exactly as plain ZeRO-3 while backward
/// gathers only within node groups; qwZ and qgZ (zero_quantized_weights, zero_quantized_gradients) cut the bytes each
/// rank sends to what their int8 and int4 blocks imply, keep every rank's weights identical, and follow the exact run's
/// loss curve closely without equalling it.
/// </summary>
[TestClass]
public sealed class ZeroPlusPlusTests
{
    private const int Steps = 20;

    private static DeepSpeedConfig Config(string zeroPlusPlus, int micro = 1, int accumulation = 2, long persistence = 1000, long prefetch = 60000,
        string precision = "") => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": {{micro}}, "gradient_accumulation_steps": {{accumulation}}, "gradient_clipping": 1.0, {{precision}}
          "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
          "zero_optimization": { "stage": 3, "reduce_bucket_size": 50000, "stage3_param_persistence_threshold": {{persistence}},
                                 "stage3_prefetch_bucket_size": {{prefetch}} {{zeroPlusPlus}} } }
        """).Config;

    private sealed record Run(float[] Weights, List<float> Losses, int SecondaryGathers, int Requests, int Skipped);

    /// <summary>Trains TinyGpt; each rank takes its rows of the same global batch. Returns the full fp32 weights and the losses.</summary>
    private static Run Train(ICommunicator communicator, DeepSpeedConfig config, int steps = Steps)
    {
        var (losses, engine, skipped) = GlobalBatchTraining.Train<TinyGpt>(communicator, config, config.MicroBatchPerGpu ?? 1, steps);
        return new Run(engine.ExportFullState().Master, losses, engine.SecondaryGathers, engine.ParameterRequests, skipped);
    }

    private static Run[] OnRanks(int ranks, DeepSpeedConfig config, int steps = Steps)
        => InProcessGroup.Run(ranks, communicator => Train(communicator, config, steps), TimeSpan.FromMinutes(2));

    [TestMethod]
    [DataRow(4, 2, 60000)]
    [DataRow(4, 2, 0)] // no prefetch: every backward request gathers alone from the group
    [DataRow(4, 2, 2_000_000)] // a staging larger than the model: prefetch reaches backward's slots before forward's are used
    [DataRow(4, 4, 60000)]
    [DataRow(2, 2, 60000)]
    public void HpzTrainsExactlyAsPlainZeroThree(int ranks, int hpz, long prefetch)
    {
        var plain = OnRanks(ranks, Config("", prefetch: prefetch));
        var hierarchical = OnRanks(ranks, Config($", \"zero_hpz_partition_size\": {hpz}", prefetch: prefetch));
        for (int rank = 0; rank < ranks; rank++)
        {
            CollectionAssert.AreEqual(plain[rank].Weights, hierarchical[rank].Weights, $"rank {rank}");
            // Every backward request, half of all, read the group's copy.
            Console.WriteLine($"rank {rank}: {hierarchical[rank].SecondaryGathers} of {hierarchical[rank].Requests} requests from the group's copy");
            Assert.AreEqual(hierarchical[rank].Requests, 2 * hierarchical[rank].SecondaryGathers);
            Assert.AreEqual(0, plain[rank].SecondaryGathers);
        }
        Assert.IsTrue(TrainerRun.RelativeDifference(plain[0].Weights, OnRanks(1, Config(""), 0)[0].Weights) > 1e-3, "training must have moved the weights");
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(4)]
    public void QuantizedTransfersFollowTheExactRun(int ranks)
    {
        const int steps = 60;
        var exact = OnRanks(ranks, Config(""), steps);
        foreach (var (name, keys) in new[]
                 {
                     ("qwZ", ", \"zero_quantized_weights\": true"),
                     ("qgZ", ", \"zero_quantized_gradients\": true"),
                     ("qwZ + qgZ + hpZ", ", \"zero_quantized_weights\": true, \"zero_quantized_gradients\": true, \"zero_hpz_partition_size\": 2"),
                 })
        {
            var quantized = OnRanks(ranks, Config(keys), steps);
            for (int rank = 1; rank < ranks; rank++)
                CollectionAssert.AreEqual(quantized[0].Weights, quantized[rank].Weights, $"{name}: rank {rank} holds different weights than rank 0");
            double relative = TrainerRun.RelativeDifference(quantized[0].Weights, exact[0].Weights);
            var curve = GlobalLoss(quantized);
            var reference = GlobalLoss(exact);
            double worst = curve.Zip(reference, (a, b) => Math.Abs(a - b)).Max();
            double late = curve.TakeLast(20).Average(), lateReference = reference.TakeLast(20).Average();
            Console.WriteLine($"{name}, {ranks} ranks: relative weight difference to the exact run {relative:E2}, largest loss difference {worst:E2}, "
                              + $"loss over the last 20 micro-steps {late:F4} against {lateReference:F4} (first {reference[0]:F4})");
            // One row per rank per micro-step makes single losses noisy; the trend is what must agree.
            Assert.IsTrue(Math.Abs(late - lateReference) < 0.05 * lateReference, $"{name}: {late:F4} against {lateReference:F4}");
            Assert.IsTrue(late < 0.7 * reference[0], $"{name}: the loss must have fallen from {reference[0]:F4}, is {late:F4}");
            Assert.IsTrue(relative > 1e-4, $"{name}: quantized transfers must change the weights (relative difference {relative:E2})");
        }
    }

    /// <summary>
    /// Bytes each rank sends in one step of one micro-batch (no slot kept whole), against ZeRO-3's 3Ψ(N−1)/N fp32
    /// elements: hpZ moves backward's gather off the world (2Ψ); qwZ sends both gathers as int8 blocks (8/32 + 1/256 of
    /// a float per element), qgZ the reduction as int4 blocks (4/32 + 1/256). Within 3% (padding, block tails).
    /// </summary>
    [TestMethod]
    [DataRow("", 3.0)]
    [DataRow(", \"zero_hpz_partition_size\": 2", 2.0)]
    [DataRow(", \"zero_quantized_weights\": true", 1 + 2 * (8 / 32.0 + 1 / 256.0))]
    [DataRow(", \"zero_quantized_gradients\": true", 2 + (4 / 32.0 + 1 / 256.0))]
    [DataRow(", \"zero_quantized_weights\": true, \"zero_quantized_gradients\": true, \"zero_hpz_partition_size\": 2",
        8 / 32.0 + 1 / 256.0)] // the gradients reduced within the nodes, then between them: none in a collective over all ranks
    public void WorldBytesPerStepFollowWhatTravels(string keys, double psiFactor)
    {
        const int ranks = 4;
        var config = Config(keys, accumulation: 1, persistence: 0);
        var sent = InProcessGroup.Run(ranks, communicator => ZeroTrafficTests.OneStep(config, communicator), TimeSpan.FromMinutes(1));
        foreach (var (bytes, _, psi, _, _) in sent)
        {
            double expected = psiFactor * psi * (ranks - 1) / ranks * sizeof(float);
            Console.WriteLine($"{(keys.Length == 0 ? "ZeRO-3" : keys.TrimStart(',', ' '))}: sent {bytes:N0} B, expected {expected:N0} B ({psiFactor:F3}Ψ(N−1)/N fp32)");
            Assert.IsTrue(Math.Abs(bytes - expected) <= 0.03 * expected, $"sent {bytes:N0} B, expected {expected:N0} B");
        }
    }

    /// <summary>
    /// <c>plan</c>'s traffic per step (<see cref="ZeroTraffic"/>) is what the ranks then send, within 1%, for every stage
    /// and ZeRO++ option with two micro-batches per step and slots kept whole (threshold 1000), on 4 ranks.
    /// </summary>
    [TestMethod]
    [DataRow(0, "")]
    [DataRow(1, "")]
    [DataRow(2, "")]
    [DataRow(3, "")]
    [DataRow(3, ", \"zero_hpz_partition_size\": 2")]
    [DataRow(3, ", \"zero_quantized_weights\": true")]
    [DataRow(3, ", \"zero_quantized_gradients\": true")]
    [DataRow(3, ", \"zero_quantized_weights\": true, \"zero_quantized_gradients\": true, \"zero_hpz_partition_size\": 2")]
    public void PlannedTrafficIsWhatTheRanksSend(int stage, string keys)
    {
        const int ranks = 4;
        var config = DeepSpeedConfig.Parse($$"""
            { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "zero_optimization": { "stage": {{stage}}, "stage3_param_persistence_threshold": 1000 {{keys}} } }
            """).Config;
        var planned = ZeroTraffic.For(TinyGpt.ParameterLayout, config.ZeroOptimization, ranks, microBatches: 2);
        var measured = InProcessGroup.Run(ranks, communicator => ZeroTrafficTests.OneStep(config, communicator), TimeSpan.FromMinutes(1));
        foreach (var (sent, _, _, group, acrossSent) in measured)
        {
            double world = sent / (double)sizeof(float), within = group / (double)sizeof(float), across = acrossSent / (double)sizeof(float);
            Console.WriteLine($"ZeRO-{stage}{keys}: planned {planned.Describe(2)}; sent {world:N0} across all ranks, {within:N0} within the group, {across:N0} between the groups");
            Assert.IsTrue(Math.Abs(world - planned.World) <= 0.01 * planned.World, $"planned {planned.World:N0}, sent {world:N0}");
            Assert.IsTrue(Math.Abs(within - planned.Group) <= 0.01 * Math.Max(1, planned.Group), $"planned {planned.Group:N0} within the group, sent {within:N0}");
            Assert.IsTrue(Math.Abs(across - planned.Across) <= 0.01 * Math.Max(1, planned.Across), $"planned {planned.Across:N0} between the groups, sent {across:N0}");
        }
    }

    /// <summary>
    /// fp16 with a loss scale of 2^32 overflows its first steps: the overflow survives qgZ's 4-bit blocks (a block
    /// with an infinity decodes to NaN), so the quantized run skips the same steps as the exact one.
    /// </summary>
    [TestMethod]
    public void AnOverflowSurvivesQuantizedGradients()
    {
        const string fp16 = "\"fp16\": { \"enabled\": true, \"initial_scale_power\": 32, \"hysteresis\": 1 },";
        var exact = OnRanks(2, Config("", precision: fp16), steps: 24);
        var quantized = OnRanks(2, Config(", \"zero_quantized_gradients\": true", precision: fp16), steps: 24);
        Console.WriteLine($"skipped steps: exact {exact[0].Skipped}, qgZ {quantized[0].Skipped}");
        Assert.IsTrue(exact[0].Skipped is > 0 and < 24, "a scale of 2^32 must overflow fp16 gradients, and halving it must end that");
        Assert.AreEqual(exact[0].Skipped, quantized[0].Skipped);
        Assert.IsTrue(quantized[0].Weights.All(float.IsFinite));
    }

    /// <summary><c>plan</c> predicts the bytes of ZeRO++'s encoded buffers and hpZ's copy as the engine holds them.</summary>
    [TestMethod]
    public void PlanPredictsWhatZeroPlusPlusHolds()
    {
        const int ranks = 4;
        var config = Config(", \"zero_quantized_weights\": true, \"zero_quantized_gradients\": true, \"zero_hpz_partition_size\": 2",
            precision: "\"bf16\": { \"enabled\": true },");
        var reports = InProcessGroup.Run(ranks, communicator =>
        {
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
            return TrainingEngine.Initialize(program, config, communicator).Memory;
        }, TimeSpan.FromMinutes(1));
        var plain = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
            Config("", precision: "\"bf16\": { \"enabled\": true },"), ranks, 0, workingBytes: sizeof(float));
        for (int rank = 0; rank < ranks; rank++)
        {
            var predicted = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks, rank, workingBytes: sizeof(float));
            Assert.AreEqual(predicted, reports[rank], $"rank {rank}: predicted {predicted.Describe()} but the engine holds {reports[rank].Describe()}");
        }
        // hpZ's copy is half the layout's slots (pieces of 2), at 4 bytes; the encoded buffers come on top.
        long copy = SlotSharding.OwnedLengthOf(TinyGpt.ParameterLayout, 2, 0) * sizeof(float);
        Console.WriteLine($"ZeRO++ rank 0 of {ranks}: {reports[0].Describe()}; buffers {reports[0].Buffers:N0} B against {plain.Buffers:N0} B without ZeRO++, hpZ copy {copy:N0} B");
        Assert.IsTrue(reports[0].Buffers > plain.Buffers + copy, "the copy and the encoded buffers are counted");
    }

    /// <summary>The global batch's loss per micro-step: the mean over ranks of their rows' losses.</summary>
    private static double[] GlobalLoss(Run[] ranks) => Enumerable.Range(0, ranks[0].Losses.Count).Select(i => ranks.Average(r => (double)r.Losses[i])).ToArray();
}
