using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Zero;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// communication_data_type, prescale_gradients and gradient_predivide_factor through the engine, at every ZeRO stage:
/// a 16-bit wire halves the gradient reductions' bytes as the plan says, trains TinyGpt as the fp32 reduction does (up
/// to the rounding it adds), and in fp16 its sum overflows where DeepSpeed's would, which the predivide factor avoids.
/// </summary>
[TestClass]
public sealed class GradientCommunicationTests
{
    private static DeepSpeedConfig Config(int stage, string keys, int micro = 1, int accumulation = 2, string precision = "\"bf16\": { \"enabled\": true },")
        => DeepSpeedConfig.Parse($$"""
            { "train_micro_batch_size_per_gpu": {{micro}}, "gradient_accumulation_steps": {{accumulation}}, "gradient_clipping": 1.0, {{precision}}
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
              "zero_optimization": { "stage": {{stage}}, "reduce_bucket_size": 50000, "stage3_param_persistence_threshold": 1000 } {{keys}} }
            """).Config;

    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void ASixteenBitWireHalvesTheGradientBytesAsPlanned(int stage)
    {
        const int ranks = 4;
        var fp32 = Config(stage, "");
        var bf16 = Config(stage, ", \"communication_data_type\": \"bf16\"");
        double Sent(DeepSpeedConfig config) => InProcessGroup.Run(ranks, communicator => ZeroTrafficTests.OneStep(config, communicator), TimeSpan.FromMinutes(1))
            .Average(r => (double)r.Sent) / sizeof(float);
        double plain = Sent(fp32), halved = Sent(bf16);
        var planned = ZeroTraffic.For(TinyGpt.ParameterLayout, bf16.ZeroOptimization, ranks, microBatches: 2, bf16.GradientCommunication);
        var plannedPlain = ZeroTraffic.For(TinyGpt.ParameterLayout, fp32.ZeroOptimization, ranks, microBatches: 2);
        Console.WriteLine($"ZeRO-{stage}, {ranks} ranks: {halved:N0} values sent per rank per step with a bf16 wire (planned {planned.World:N0}) against {plain:N0} in fp32 (planned {plannedPlain.World:N0})");
        Assert.IsTrue(Math.Abs(halved - planned.World) <= 0.01 * planned.World, $"planned {planned.World:N0}, sent {halved:N0}");
        // Stage 0 sends only gradients (half); the others also gather fp32 parameters, which stay as they were.
        double gradientsBefore = stage switch { 0 => plain, 1 => plain / 2, 2 => plain * 2 / 3, _ => plain / 3 };
        Assert.AreEqual(plain - gradientsBefore / 2, halved, 0.02 * plain, "the gradient reductions, and only they, are halved");
    }

    [TestMethod]
    [DataRow(0, "\"communication_data_type\": \"bf16\"")]
    [DataRow(1, "\"communication_data_type\": \"bf16\", \"gradient_predivide_factor\": 2")]
    [DataRow(2, "\"communication_data_type\": \"fp16\", \"prescale_gradients\": true")]
    [DataRow(3, "\"communication_data_type\": \"bf16\"")]
    [DataRow(2, "\"gradient_predivide_factor\": 3")] // not a power of two, so the fp32 division rounds
    public void TrainingThroughTheWireFollowsTheFp32Reduction(int stage, string keys)
    {
        const int ranks = 2, steps = 12;
        var (exact, exactWeights) = Train(ranks, Config(stage, ""), steps);
        var (wired, wiredWeights) = Train(ranks, Config(stage, ", " + keys), steps);
        var (untrained, initial) = Train(ranks, Config(stage, ""), 0);
        double moved = TrainerRun.RelativeDifference(exactWeights, initial);
        double apart = TrainerRun.RelativeDifference(exactWeights, wiredWeights);
        Console.WriteLine($"ZeRO-{stage}, {keys}: last loss {wired[^1]:F4} against {exact[^1]:F4}; weights {apart:E2} apart (training moved them {moved:E2})");
        Assert.IsTrue(apart > 0, "the reduction must have gone through the configured path");
        Assert.IsTrue(apart < 0.05 * moved, $"the wire's rounding must stay small next to training: {apart:E2} against {moved:E2}");
        for (int i = 0; i < exact.Length; i++) Assert.AreEqual(exact[i], wired[i], 0.02 * exact[i], $"micro-step {i}");
        Assert.AreEqual(0, untrained.Length);
    }

    /// <summary>
    /// fp16 with a loss scale of 2^32 overflows its first steps; the scaler halves the scale each time. Over an fp16
    /// wire the sum of four ranks' gradients overflows at scales where each rank's own does not, so more steps are
    /// skipped than with the fp32 reduction; dividing by 4 before the sum (gradient_predivide_factor, DeepSpeed's answer)
    /// skips exactly the fp32 reduction's steps.
    /// </summary>
    [TestMethod]
    public void AnFp16WireOverflowsInTheSumAndPredivisionPreventsIt()
    {
        const int ranks = 4, steps = 30;
        const string fp16 = "\"fp16\": { \"enabled\": true, \"initial_scale_power\": 32, \"hysteresis\": 1 },";
        int Skipped(string keys) => InProcessGroup.Run(ranks, communicator =>
            GlobalBatchTraining.Train<TinyGpt>(communicator, Config(1, keys, precision: fp16), 1, steps).Skipped, TimeSpan.FromMinutes(2))[0];
        int exact = Skipped(""), sixteen = Skipped(", \"communication_data_type\": \"fp16\""),
            predivided = Skipped(", \"communication_data_type\": \"fp16\", \"gradient_predivide_factor\": 4");
        Console.WriteLine($"skipped steps of {steps}: fp32 reduction {exact}, fp16 wire {sixteen}, fp16 wire predivided by 4 {predivided}");
        Assert.IsTrue(exact is > 0 and < steps, "a scale of 2^32 must overflow fp16 gradients, and halving it must end that");
        Assert.IsTrue(sixteen > exact, "the fp16 sum of four ranks overflows before any rank's gradient does");
        Assert.AreEqual(exact, predivided);
    }

    /// <summary><c>plan</c> predicts the 16-bit wire's packed buffers as the engine holds them, at every stage.</summary>
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void PlanPredictsTheWiresBuffers(int stage)
    {
        const int ranks = 3;
        var config = Config(stage, ", \"communication_data_type\": \"fp16\"");
        var reports = InProcessGroup.Run(ranks, communicator =>
        {
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
            return TrainingEngine.Initialize(program, config, communicator).Memory;
        }, TimeSpan.FromMinutes(1));
        var plain = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
            Config(stage, ""), ranks, 0, workingBytes: sizeof(float));
        for (int rank = 0; rank < ranks; rank++)
        {
            var predicted = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks, rank, workingBytes: sizeof(float));
            Assert.AreEqual(predicted, reports[rank], $"rank {rank}: predicted {predicted.Describe()} but the engine holds {reports[rank].Describe()}");
        }
        Console.WriteLine($"ZeRO-{stage}: buffers {reports[0].Buffers:N0} B with an fp16 wire against {plain.Buffers:N0} B");
        Assert.IsTrue(reports[0].Buffers > plain.Buffers, "the packed segments are counted");
    }

    private static (float[] Losses, float[] Weights) Train(int ranks, DeepSpeedConfig config, int steps)
    {
        var runs = InProcessGroup.Run(ranks, communicator =>
        {
            var (losses, engine, _) = GlobalBatchTraining.Train<TinyGpt>(communicator, config, 1, steps);
            return (losses, engine.ExportFullState().Master);
        }, TimeSpan.FromMinutes(2));
        // The global batch's loss per micro-step: the mean over ranks of their rows' losses.
        var global = Enumerable.Range(0, runs[0].losses.Count).Select(i => runs.Average(r => r.losses[i])).ToArray();
        return (global, runs[0].Master);
    }
}
