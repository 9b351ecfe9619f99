using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>The engine's step: allocation after warm-up, fp16 overflow handling, gradient accumulation.</summary>
[TestClass]
public sealed class EngineTests
{
    /// <summary>
    /// Bytes a whole training step (sample, forward, backward, optimizer) may allocate after warm-up on the thread that
    /// runs it. The step allocates nothing there (nor on the CPU worker threads, see ParallelPathTests); the bound only
    /// leaves room for the runtime's own rare bookkeeping.
    /// </summary>
    public const long AllocationBoundBytesPerStep = 64;

    /// <summary>
    /// The same measured process-wide, which also counts the test host's background threads (about 2 KB per second
    /// of wall time, so it depends on how loaded the machine is); a loose bound that still catches any per-step buffer.
    /// </summary>
    public const long ProcessAllocationBoundBytesPerStep = 16 * 1024;

    private static (TrainingEngine Engine, BatchSampler Sampler, int[] Inputs, int[] Targets) Create(string json)
    {
        var config = DeepSpeedConfig.Parse(json).Config;
        var batch = config.Resolve(1);
        var program = TinyGpt.Compile(new CpuOps<float>(), batch.MicroBatchPerGpu);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
        var engine = TrainingEngine.Initialize(program, config);
        var task = new AdditionTask();
        var sampler = task.CreateDataset(2000, seed: 5).CreateSampler(DataSplit.Train, batch.MicroBatchPerGpu, program.SequenceLength, seed: 7);
        var inputs = new int[batch.MicroBatchPerGpu * program.SequenceLength];
        return (engine, sampler, inputs, new int[inputs.Length]);
    }

    private static float Step(TrainingEngine engine, BatchSampler sampler, int[] inputs, int[] targets)
    {
        sampler.NextBatch(inputs, targets);
        float loss = engine.Forward(inputs, targets);
        engine.Backward();
        engine.Step();
        return loss;
    }

    [TestMethod]
    public void TrainingStepAllocatesLessThanTheBoundAfterWarmup()
    {
        var (engine, sampler, inputs, targets) = Create("""{ "train_micro_batch_size_per_gpu": 12, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } } }""");
        for (int i = 0; i < 5; i++) Step(engine, sampler, inputs, targets);

        const int steps = 20;
        long before = GC.GetTotalAllocatedBytes(precise: true);
        long beforeThread = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < steps; i++) Step(engine, sampler, inputs, targets);
        long threadPerStep = (GC.GetAllocatedBytesForCurrentThread() - beforeThread) / steps;
        long perStep = (GC.GetTotalAllocatedBytes(precise: true) - before) / steps;

        Console.WriteLine($"after warm-up a training step allocated {threadPerStep:N0} bytes on its thread (bound {AllocationBoundBytesPerStep:N0}) " +
                          $"and {perStep:N0} bytes process-wide (bound {ProcessAllocationBoundBytesPerStep:N0})");
        Assert.IsTrue(threadPerStep < AllocationBoundBytesPerStep, $"a step allocated {threadPerStep:N0} bytes on its thread");
        Assert.IsTrue(perStep < ProcessAllocationBoundBytesPerStep, $"a step allocated {perStep:N0} bytes process-wide");
    }

    [TestMethod]
    public void Fp16OverflowSkipsTheStepAndHalvesTheScale()
    {
        // 2^40 makes the scaled gradients overflow fp16 (max 65504), so the first steps must be skipped.
        var (engine, sampler, inputs, targets) = Create("""
            { "train_micro_batch_size_per_gpu": 4,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "fp16": { "enabled": true, "initial_scale_power": 40, "hysteresis": 1, "loss_scale_window": 1000 } }
            """);
        var before = engine.MasterWeights.ToArray();

        Step(engine, sampler, inputs, targets);
        Assert.AreEqual(1, engine.LossScaler.SkippedSteps);
        Assert.AreEqual(Math.Pow(2, 39), engine.LossScaler.Scale);
        CollectionAssert.AreEqual(before, engine.MasterWeights.ToArray(), "a skipped step must not change the weights");

        for (int i = 0; i < 40 && engine.LossScaler.SkippedSteps == engine.GlobalStep; i++) Step(engine, sampler, inputs, targets);
        Assert.IsTrue(engine.GlobalStep > engine.LossScaler.SkippedSteps, "the scale must come down until a step succeeds");
        Assert.IsTrue(engine.LossScaler.Scale < 65504.0 * 64, $"scale {engine.LossScaler.Scale}");
        CollectionAssert.AreNotEqual(before, engine.MasterWeights.ToArray(), "a successful step must update the weights");

        // fp16 working weights are the masters rounded to half precision.
        var working = engine.Program.Parameters;
        var masters = engine.MasterWeights;
        for (int i = 0; i < 1000; i++) Assert.AreEqual((float)(Half)masters[i], working[i]);
    }

    [TestMethod]
    public void GradientAccumulationEqualsOneLargerMicroBatch()
    {
        // Two micro-batches of 2 with GAS 2 must equal one micro-batch of 4 holding the same rows.
        var (small, sampler, _, _) = Create("""{ "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } } }""");
        var (large, _, _, _) = Create("""{ "train_micro_batch_size_per_gpu": 4, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } } }""");
        int rowTokens = TinyGpt.SequenceLength;
        var inputs = new int[4 * rowTokens];
        var targets = new int[4 * rowTokens];
        sampler.NextBatch(inputs.AsSpan(0, 2 * rowTokens), targets.AsSpan(0, 2 * rowTokens));
        sampler.NextBatch(inputs.AsSpan(2 * rowTokens), targets.AsSpan(2 * rowTokens));

        for (int micro = 0; micro < 2; micro++)
        {
            small.Forward(inputs.AsSpan(micro * 2 * rowTokens, 2 * rowTokens), targets.AsSpan(micro * 2 * rowTokens, 2 * rowTokens));
            small.Backward();
        }
        large.Forward(inputs, targets);
        large.Backward();

        // The accumulated gradient (each micro-batch scaled by 1/GAS) equals the large batch's gradient.
        var a = small.Program.Gradients.ToArray();
        var b = large.Program.Gradients.ToArray();
        double difference = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            difference += (a[i] - b[i]) * (a[i] - b[i]);
            norm += b[i] * b[i];
        }
        double relative = Math.Sqrt(difference / norm);
        Console.WriteLine($"relative gradient difference, GAS 2 × 2 vs 4: {relative:E2}");
        Assert.IsTrue(relative < 1e-5, $"relative gradient difference {relative}");

        // Only the boundary updates; both then take the same AdamW step (to float32 rounding amplified by Adam's
        // normalisation of near-zero gradients, well under 1% of the 1e-3 learning rate).
        Assert.AreEqual(StepOutcome.Accumulated, small.Step());
        Assert.AreEqual(StepOutcome.Updated, small.Step());
        Assert.AreEqual(StepOutcome.Updated, large.Step());
        var wa = small.MasterWeights.ToArray();
        var wb = large.MasterWeights.ToArray();
        double worst = 0;
        for (int i = 0; i < wa.Length; i++) worst = Math.Max(worst, Math.Abs(wa[i] - wb[i]));
        Assert.IsTrue(worst < 1e-5, $"max weight difference {worst}");
        Assert.IsTrue(Math.Abs(small.LastGradientNorm - large.LastGradientNorm) < 1e-4 * large.LastGradientNorm);
    }
}
