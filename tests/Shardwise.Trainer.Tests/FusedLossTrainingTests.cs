using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Ops;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// TrainingEngine.ForwardBackward (what <c>train</c> and <c>bench</c> call: the loss op writes the logits' gradient
/// as it computes the loss) trains exactly as Forward then Backward: bitwise the same losses and weights over steps
/// with fp16 loss scaling and skipped steps, bf16, gradient accumulation, ZeRO-2 on two ranks and overlap_comm; and
/// it runs the fused op, one per micro-batch, where Forward then Backward runs the pair.
/// </summary>
[TestClass]
public sealed class FusedLossTrainingTests
{
    private const string AdamW = FusedOptimizerStepTests.AdamW;

    [TestMethod]
    [DataRow("fp32", $$"""{ "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.5, {{AdamW}} }""")]
    [DataRow("fp16, overflow skips", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{AdamW}},
          "fp16": { "enabled": true, "initial_scale_power": 24, "hysteresis": 1, "loss_scale_window": 4 } }
        """)]
    [DataRow("bf16, accumulation 2", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0, {{AdamW}},
          "bf16": { "enabled": true } }
        """)]
    public void TrainsAsForwardThenBackward(string what, string json)
    {
        var separate = Train(new SingleProcessCommunicator(), json, fused: false, steps: 6);
        var fused = Train(new SingleProcessCommunicator(), json, fused: true, steps: 6);
        AssertIdentical(separate, fused, what);
        if (what.Contains("skips")) Assert.IsTrue(fused.Skipped > 0, "the fp16 run skipped steps, so the scale changed between them");
    }

    [TestMethod]
    [DataRow(2, false)]
    [DataRow(0, true)]
    public void TrainsAsForwardThenBackwardOnTwoRanks(int stage, bool overlap)
    {
        string json = $$"""
            { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0, {{AdamW}},
              "zero_optimization": { "stage": {{stage}}, "reduce_bucket_size": 50000, "overlap_comm": {{(overlap ? "true" : "false")}} } }
            """;
        var separate = InProcessGroup.Run(2, c => Train(c, json, fused: false, steps: 4), TimeSpan.FromMinutes(2));
        var fused = InProcessGroup.Run(2, c => Train(c, json, fused: true, steps: 4), TimeSpan.FromMinutes(2));
        for (int rank = 0; rank < 2; rank++)
        {
            AssertIdentical(separate[rank], fused[rank], $"stage {stage}, overlap {overlap}, rank {rank}");
            if (overlap) Assert.IsTrue(fused[rank].OverlappedBuckets > 0, "overlap_comm reduced buckets during the fused backward");
        }
    }

    [TestMethod]
    public void ForwardBackwardRunsTheFusedOpAndForwardThenBackwardThePair()
    {
        var config = DeepSpeedConfig.Parse($$"""{ "train_micro_batch_size_per_gpu": 2, {{AdamW}} }""").Config;
        var ops = new FusedReferenceOps();
        var program = TinyGpt.Compile(ops, 2);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
        var engine = TrainingEngine.Initialize(program, config);
        var inputs = new int[2 * TinyGpt.SequenceLength];
        var targets = new int[inputs.Length];
        Sampler(2).NextBatch(inputs, targets);

        engine.ForwardBackward(inputs, targets);
        engine.ForwardBackward(inputs, targets);
        Assert.AreEqual(2, ops.CrossEntropyWithGradientCalls, "one fused loss op per ForwardBackward");
        Assert.AreEqual(0, ops.CrossEntropyBackwardCalls, "and no separate backward of the loss");

        engine.Forward(inputs, targets);
        engine.Backward();
        Assert.AreEqual(2, ops.CrossEntropyWithGradientCalls);
        Assert.AreEqual(1, ops.CrossEntropyBackwardCalls, "Forward then Backward runs the loss's backward itself");
    }

    private sealed record Trace(List<float> Losses, float[] Master, float[] Working, long Skipped, long OverlappedBuckets);

    private static Trace Train(ICommunicator communicator, string json, bool fused, int steps)
    {
        var config = DeepSpeedConfig.Parse(json).Config;
        var batch = config.Resolve(communicator.Size);
        var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool),
            batch.MicroBatchPerGpu);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
        var engine = TrainingEngine.Initialize(program, config, communicator);
        int rows = batch.MicroBatchPerGpu * communicator.Size, length = batch.MicroBatchPerGpu * TinyGpt.SequenceLength;
        var sampler = Sampler(rows);
        var inputs = new int[rows * TinyGpt.SequenceLength];
        var targets = new int[inputs.Length];
        int mine = communicator.Rank * length;
        List<float> losses = [];
        long skipped = 0, overlapped = 0;
        while (engine.GlobalStep < steps)
        {
            sampler.NextBatch(inputs, targets);
            if (fused)
            {
                losses.Add(engine.ForwardBackward(inputs.AsSpan(mine, length), targets.AsSpan(mine, length)));
            }
            else
            {
                losses.Add(engine.Forward(inputs.AsSpan(mine, length), targets.AsSpan(mine, length)));
                engine.Backward();
            }
            if (engine.IsGradientAccumulationBoundary) overlapped += engine.OverlappedBuckets;
            if (engine.Step() == StepOutcome.SkippedOverflow) skipped++;
        }
        return new Trace(losses, engine.ExportFullState().Master, program.Parameters.ToArray(), skipped, overlapped);
    }

    private static BatchSampler Sampler(int rows) => new AdditionTask().CreateDataset(2000, seed: 5)
        .CreateSampler(DataSplit.Train, rows, TinyGpt.SequenceLength, seed: 7);

    private static void AssertIdentical(Trace separate, Trace fused, string what)
    {
        CollectionAssert.AreEqual(separate.Losses, fused.Losses, $"{what}: losses");
        CollectionAssert.AreEqual(separate.Master, fused.Master, $"{what}: master weights");
        CollectionAssert.AreEqual(separate.Working, fused.Working, $"{what}: working parameters");
        Assert.AreEqual(separate.Skipped, fused.Skipped, $"{what}: skipped steps");
        Assert.IsTrue(separate.Losses.All(float.IsFinite) && separate.Losses[0] != separate.Losses[^1], $"{what}: training moved");
    }
}
