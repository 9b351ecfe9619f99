using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Ops;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Optim;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The engine's fused optimizer step (<see cref="IFusedOptimizerOps"/>, here the CPU reference
/// <see cref="FusedAdamReference"/>) against its host step: TinyGpt trained for 20 updates gives bit-identical losses,
/// gradient norms, loss scales, weights (masters and working copy) and Adam moments in fp32, fp16 with overflow skips,
/// bf16, with clipping, gradient accumulation and both weight-decay modes, for Adam, Lion (<see cref="IFusedOptimizerOps.LionStep"/>) and Adagrad (<see cref="IFusedOptimizerOps.AdagradStep"/>);
/// a checkpoint taken on the fused path resumes bit for bit, on either path; configurations the fused step does not cover
/// take the host step.
/// </summary>
[TestClass]
public sealed class FusedOptimizerStepTests
{
    private const int Updates = 20;

    /// <summary>What a run produced, step by step and at the end.</summary>
    private sealed record Trace(List<float> Losses, List<double> Norms, List<double> LearningRates, List<StepOutcome> Outcomes,
        long Skipped, double Scale, long AdamStep, float[] Master, float[] Working, float[] ExpAvg, float[] ExpAvgSq);

    private static TrainingEngine CreateEngine(string json, bool fused)
    {
        var config = DeepSpeedConfig.Parse(json).Config;
        var batch = config.Resolve(1);
        ITensorOps<float> ops = fused ? new FusedReferenceOps() : new CpuOps<float>();
        var program = TinyGpt.Compile(ops, batch.MicroBatchPerGpu);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
        return TrainingEngine.Initialize(program, config);
    }

    private static BatchSampler Sampler(TrainingEngine engine) => new AdditionTask().CreateDataset(2000, seed: 5)
        .CreateSampler(DataSplit.Train, engine.Batch.MicroBatchPerGpu, TinyGpt.SequenceLength, seed: 7);

    /// <summary>Trains until <paramref name="globalSteps"/> optimizer steps (skipped ones included) have been taken.</summary>
    private static Trace Train(TrainingEngine engine, BatchSampler sampler, long globalSteps)
    {
        var inputs = new int[engine.Batch.MicroBatchPerGpu * TinyGpt.SequenceLength];
        var targets = new int[inputs.Length];
        List<float> losses = [];
        List<double> norms = [], rates = [];
        List<StepOutcome> outcomes = [];
        while (engine.GlobalStep < globalSteps)
        {
            sampler.NextBatch(inputs, targets);
            losses.Add(engine.Forward(inputs, targets));
            engine.Backward();
            StepOutcome outcome = engine.Step();
            outcomes.Add(outcome);
            if (outcome != StepOutcome.Updated) continue;
            norms.Add(engine.LastGradientNorm);
            rates.Add(engine.LastLearningRate);
        }
        var (master, expAvg, expAvgSq) = engine.OwnedState();
        return new Trace(losses, norms, rates, outcomes, engine.LossScaler.SkippedSteps, engine.LossScaler.Scale,
            engine.Optimizer.State.Step, master, engine.Program.Parameters.ToArray(), (float[])expAvg.Clone(), (float[])expAvgSq.Clone());
    }

    private static int[] Bits(IEnumerable<float> values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    private static long[] Bits(IEnumerable<double> values) => values.Select(BitConverter.DoubleToInt64Bits).ToArray();

    private static void AssertIdentical(Trace host, Trace fused, string what)
    {
        CollectionAssert.AreEqual(host.Outcomes, fused.Outcomes, $"{what}: step outcomes");
        CollectionAssert.AreEqual(Bits(host.Losses), Bits(fused.Losses), $"{what}: losses");
        CollectionAssert.AreEqual(Bits(host.Norms), Bits(fused.Norms), $"{what}: gradient norms");
        CollectionAssert.AreEqual(Bits(host.LearningRates), Bits(fused.LearningRates), $"{what}: learning rates");
        Assert.AreEqual(host.Skipped, fused.Skipped, $"{what}: skipped steps");
        Assert.AreEqual(host.Scale, fused.Scale, $"{what}: loss scale");
        Assert.AreEqual(host.AdamStep, fused.AdamStep, $"{what}: Adam step");
        CollectionAssert.AreEqual(Bits(host.Master), Bits(fused.Master), $"{what}: master weights");
        CollectionAssert.AreEqual(Bits(host.Working), Bits(fused.Working), $"{what}: working parameters");
        CollectionAssert.AreEqual(Bits(host.ExpAvg), Bits(fused.ExpAvg), $"{what}: exp_avg");
        CollectionAssert.AreEqual(Bits(host.ExpAvgSq), Bits(fused.ExpAvgSq), $"{what}: exp_avg_sq");
    }

    internal const string AdamW = """ "optimizer": { "type": "AdamW", "params": { "lr": 3e-3, "weight_decay": 0.1 } } """;

    private const string Lion = """ "optimizer": { "type": "Lion", "params": { "lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.1 } } """;

    private const string Adagrad = """ "optimizer": { "type": "Adagrad", "params": { "lr": 1e-2, "weight_decay": 0.01 } } """;

    [TestMethod]
    [DataRow("fp32, clipping", $$"""{ "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.5, {{AdamW}} }""")]
    [DataRow("fp16, overflow skips", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{AdamW}},
          "fp16": { "enabled": true, "initial_scale_power": 24, "hysteresis": 1, "loss_scale_window": 4 } }
        """)]
    [DataRow("bf16, accumulation 2", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0, {{AdamW}},
          "bf16": { "enabled": true } }
        """)]
    [DataRow("bf16, ZeRO stage 1 on one rank (its partition is the whole arena)", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{AdamW}}, "zero_optimization": { "stage": 1 },
          "bf16": { "enabled": true } }
        """)]
    [DataRow("fp32, accumulation 3, warm-up schedule", $$"""
        { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 3, {{AdamW}},
          "scheduler": { "type": "WarmupLR", "params": { "warmup_min_lr": 0, "warmup_max_lr": 3e-3, "warmup_num_steps": 10 } } }
        """)]
    [DataRow("bf16, OneCycle with cyclic momentum (Adam's betas set per step)", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{AdamW}}, "bf16": { "enabled": true },
          "scheduler": { "type": "OneCycle", "params": { "cycle_min_lr": 1e-3, "cycle_max_lr": 5e-3, "cycle_first_step_size": 6,
            "cycle_second_step_size": 8, "decay_step_size": 2, "decay_lr_rate": 0.5, "decay_mom_rate": 0.01 } } }
        """)]
    [DataRow("fp16, L2 weight decay (adam_w_mode false)", """
        { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0,
          "optimizer": { "type": "Adam", "params": { "lr": 3e-3, "weight_decay": 0.1, "adam_w_mode": false } },
          "fp16": { "enabled": true, "initial_scale_power": 20, "hysteresis": 1, "loss_scale_window": 6 } }
        """)]
    [DataRow("fp32, Lion, clipping", $$"""{ "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.5, {{Lion}} }""")]
    [DataRow("fp16, Lion, overflow skips", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{Lion}},
          "fp16": { "enabled": true, "initial_scale_power": 24, "hysteresis": 1, "loss_scale_window": 4 } }
        """)]
    [DataRow("bf16, Lion, ZeRO stage 1, accumulation 2, warm-up schedule", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0, {{Lion}},
          "zero_optimization": { "stage": 1 }, "bf16": { "enabled": true },
          "scheduler": { "type": "WarmupLR", "params": { "warmup_min_lr": 0, "warmup_max_lr": 1e-3, "warmup_num_steps": 10 } } }
        """)]
    [DataRow("fp32, Adagrad, clipping", $$"""{ "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.5, {{Adagrad}} }""")]
    [DataRow("fp16, Adagrad, overflow skips", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{Adagrad}},
          "fp16": { "enabled": true, "initial_scale_power": 24, "hysteresis": 1, "loss_scale_window": 4 } }
        """)]
    [DataRow("bf16, Adagrad, ZeRO stage 1, accumulation 2", $$"""
        { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0, {{Adagrad}},
          "zero_optimization": { "stage": 1 }, "bf16": { "enabled": true } }
        """)]
    public void FusedStepEqualsTheHostStepBitForBit(string name, string json)
    {
        TrainingEngine host = CreateEngine(json, fused: false), fused = CreateEngine(json, fused: true);
        Assert.IsFalse(host.FusedOptimizer, "over CpuOps the engine steps on the host");
        Assert.IsTrue(fused.FusedOptimizer, "over a backend with IFusedOptimizerOps the engine takes the fused step");
        Trace expected = Train(host, Sampler(host), Updates), actual = Train(fused, Sampler(fused), Updates);
        Console.WriteLine($"{name}: {expected.Norms.Count} updates, {expected.Skipped} skipped, last loss {expected.Losses[^1]}, " +
                          $"norms {expected.Norms.Min():G3}..{expected.Norms.Max():G3}");

        // The run must exercise what its name says.
        Assert.IsTrue(expected.Norms.Count > 0, "no update ran");
        CollectionAssert.AreNotEqual(Bits(expected.Master), Bits(Initial()), "the weights must have moved");
        if (name.StartsWith("fp16", StringComparison.Ordinal)) Assert.IsTrue(expected.Skipped > 0, "the scale must overflow fp16 at least once");
        if (name.Contains("clipping", StringComparison.Ordinal)) Assert.IsTrue(expected.Norms.Any(n => n > 0.5), "clipping must be active");
        if (name.Contains("Lion", StringComparison.Ordinal))
            Assert.IsFalse(expected.ExpAvgSq.Any(v => v != 0), "Lion keeps one state tensor: exp_avg_sq stays zero");
        if (name.Contains("Adagrad", StringComparison.Ordinal))
            Assert.IsFalse(expected.ExpAvg.Any(v => v != 0), "Adagrad keeps one state tensor, in exp_avg_sq: exp_avg stays zero");
        AssertIdentical(expected, actual, name);
    }

    /// <summary>
    /// OneCycle's β1 and β2 reach the optimizer: the same learning-rate cycle with and without cycle_momentum trains to
    /// different weights, on the host step and on the fused one alike.
    /// </summary>
    [TestMethod]
    public void OneCyclesMomentumChangesTheUpdates()
    {
        foreach (bool fusedStep in new[] { false, true })
        {
            Trace Run(bool cycleMomentum)
            {
                string json = $$"""
                    { "train_micro_batch_size_per_gpu": 2, {{AdamW}},
                      "scheduler": { "type": "OneCycle", "params": { "cycle_min_lr": 1e-3, "cycle_max_lr": 5e-3, "cycle_first_step_size": 6,
                        "cycle_momentum": {{(cycleMomentum ? "true" : "false")}} } } }
                    """;
                TrainingEngine engine = CreateEngine(json, fusedStep);
                return Train(engine, Sampler(engine), 8);
            }

            Trace cycled = Run(true), plain = Run(false);
            CollectionAssert.AreEqual(Bits(plain.LearningRates), Bits(cycled.LearningRates), "the same learning rates");
            CollectionAssert.AreNotEqual(Bits(plain.Master), Bits(cycled.Master), $"fused {fusedStep}: the betas changed the weights");
            CollectionAssert.AreNotEqual(Bits(plain.ExpAvg), Bits(cycled.ExpAvg), $"fused {fusedStep}: and the first moments");
        }
    }

    /// <summary>
    /// Lamb trains TinyGpt through the host step even over a backend with the fused (Adam) step, bit for bit as over
    /// CpuOps, and lowers the loss; a model split over ranks is refused with the reason.
    /// </summary>
    [TestMethod]
    public void LambTakesTheHostStepAndTrains()
    {
        const string Json = """
            { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0,
              "optimizer": { "type": "Lamb", "params": { "lr": 1e-2, "weight_decay": 0.01, "max_coeff": 0.3, "min_coeff": 0.01 } } }
            """;
        TrainingEngine host = CreateEngine(Json, fused: false), fusedCapable = CreateEngine(Json, fused: true);
        Assert.IsFalse(fusedCapable.FusedOptimizer, "Lamb runs the host step");
        Trace expected = Train(host, Sampler(host), Updates), actual = Train(fusedCapable, Sampler(fusedCapable), Updates);
        AssertIdentical(expected, actual, "Lamb");
        double first = expected.Losses.Take(4).Average(), last = expected.Losses.TakeLast(4).Average();
        Console.WriteLine($"Lamb: mean loss of the first 4 steps {first:F4}, of the last 4 {last:F4}");
        Assert.IsTrue(last < first - 0.1, $"the loss must fall: {first:F4} → {last:F4}");

        var error = Assert.ThrowsExactly<NotSupportedException>(() => host.ModelParallel = new NoSplit());
        StringAssert.Contains(error.Message, "Lamb with a model split over ranks");
    }

    /// <summary>A model-parallel group of one, for the refusal above.</summary>
    private sealed class NoSplit : IModelParallelReduction
    {
        public double SumOfSquares(ReadOnlySpan<float> gradients, long layoutOffset)
        {
            double sum = 0;
            foreach (float g in gradients) sum += (double)g * g;
            return sum;
        }

        public double Sum(double local) => local;

        public bool Any(bool local) => local;
    }

    private static float[] Initial()
    {
        var weights = new float[TinyGpt.ParameterLayout.TotalElements];
        TinyGpt.ParameterLayout.Initialize<float>(weights, seed: 3);
        return weights;
    }

    [TestMethod]
    public void AFusedTrainingStepAllocatesLessThanTheBound()
    {
        TrainingEngine engine = CreateEngine($$"""{ "train_micro_batch_size_per_gpu": 4, "gradient_clipping": 0.5, {{AdamW}} }""", fused: true);
        Assert.IsTrue(engine.FusedOptimizer);
        BatchSampler sampler = Sampler(engine);
        var inputs = new int[4 * TinyGpt.SequenceLength];
        var targets = new int[inputs.Length];
        void Step()
        {
            sampler.NextBatch(inputs, targets);
            engine.Forward(inputs, targets);
            engine.Backward();
            engine.Step();
        }
        for (int i = 0; i < 5; i++) Step();
        const int steps = 20;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < steps; i++) Step();
        long perStep = (GC.GetAllocatedBytesForCurrentThread() - before) / steps;
        Console.WriteLine($"after warm-up a fused training step allocated {perStep:N0} bytes on its thread");
        Assert.IsTrue(perStep < EngineTests.AllocationBoundBytesPerStep, $"a fused step allocated {perStep:N0} bytes");
        Assert.IsFalse(engine.Optimizer.State.MomentsAllocated, "the backend holds the moments: no host copies (about 1 GB for GPT-2 124M)");
    }

    [TestMethod]
    [DataRow(AdamW)]
    [DataRow(Lion)]
    [DataRow(Adagrad)]
    public void AFusedCheckpointResumesBitForBit(string optimizer)
    {
        string json = $$"""
            { "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{optimizer}},
              "fp16": { "enabled": true, "initial_scale_power": 20, "hysteresis": 1, "loss_scale_window": 5 } }
            """;
        string root = TrainerRun.TempDirectory();
        string configPath = Path.Combine(root, "config.json");
        File.WriteAllText(configPath, json);
        var settings = RunSettings.Read(CliArguments.Parse(["train", "--config", configPath, "--output", root]), "TinyGpt", TextWriter.Null);
        var store = new TrainingCheckpoint(root);
        var task = new AdditionTask();

        TrainingEngine straight = CreateEngine(json, fused: true);
        BatchSampler straightSampler = Sampler(straight);
        Train(straight, straightSampler, Updates / 2);
        string checkpoint = store.Save(straight, straightSampler, task.Tokenizer, settings)!;
        Trace expected = Train(straight, straightSampler, Updates);

        TrainingEngine resumed = CreateEngine(json, fused: true);
        BatchSampler resumedSampler = Sampler(resumed);
        TrainingCheckpoint.Load(checkpoint, resumed, resumedSampler);
        Assert.IsTrue(resumed.FusedOptimizer);
        Trace actual = Train(resumed, resumedSampler, Updates);
        Assert.IsTrue(expected.Skipped > 0 && expected.Norms.Count > 0, "the run must both skip and update");
        AssertIdentical(expected, actual, "resumed from a fused checkpoint");
        Assert.IsFalse(straight.Optimizer.State.MomentsAllocated || resumed.Optimizer.State.MomentsAllocated,
            "saving and loading a checkpoint on the fused path leaves no host moments in the optimizer");

        // The same checkpoint resumed on the host step continues identically: the fused state is the host state.
        TrainingEngine onHost = CreateEngine(json, fused: false);
        BatchSampler hostSampler = Sampler(onHost);
        TrainingCheckpoint.Load(checkpoint, onHost, hostSampler);
        AssertIdentical(expected, Train(onHost, hostSampler, Updates), "resumed on the host step");
        Assert.IsTrue(onHost.Optimizer.State.MomentsAllocated, "the host step keeps its moments on the host");

        // And a checkpoint the host step wrote resumes on the fused path.
        TrainingEngine hostStraight = CreateEngine(json, fused: false);
        BatchSampler hostStraightSampler = Sampler(hostStraight);
        Train(hostStraight, hostStraightSampler, Updates / 2);
        string hostCheckpoint = new TrainingCheckpoint(Path.Combine(root, "host")).Save(hostStraight, hostStraightSampler, task.Tokenizer, settings)!;
        TrainingEngine fusedFromHost = CreateEngine(json, fused: true);
        BatchSampler fusedFromHostSampler = Sampler(fusedFromHost);
        TrainingCheckpoint.Load(hostCheckpoint, fusedFromHost, fusedFromHostSampler);
        Assert.IsTrue(fusedFromHost.FusedOptimizer);
        AssertIdentical(expected, Train(fusedFromHost, fusedFromHostSampler, Updates), "a host checkpoint resumed on the fused step");
    }

    [TestMethod]
    [DataRow("""{ "zero_optimization": { "stage": 1, "offload_optimizer": { "device": "cpu" } } }""")]
    [DataRow("""{ "zero_optimization": { "stage": 1, "offload_optimizer": { "device": "cpu", "pin_memory": true } } }""")]
    public void ConfigurationsTheFusedStepDoesNotCoverStepOnTheHost(string zero)
    {
        string json = $$"""{ "train_micro_batch_size_per_gpu": 2, {{AdamW}}, {{zero.Trim()[1..^1]}} }""";
        TrainingEngine host = CreateEngine(json, fused: false), fused = CreateEngine(json, fused: true);
        Assert.IsFalse(fused.FusedOptimizer, $"{zero} must take the host step");
        AssertIdentical(Train(host, Sampler(host), 3), Train(fused, Sampler(fused), 3), zero);
    }

    [TestMethod]
    public void SeveralDataParallelRanksStepOnTheHost()
    {
        string json = $$"""{ "train_micro_batch_size_per_gpu": 2, {{AdamW}} }""";
        string[] paths = InProcessGroup.Run(2, communicator =>
        {
            var config = DeepSpeedConfig.Parse(json).Config;
            var program = TinyGpt.Compile(new FusedReferenceOps(), config.Resolve(communicator.Size).MicroBatchPerGpu);
            TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
            return TrainingEngine.Initialize(program, config, communicator).FusedOptimizer ? "fused" : "host";
        }, TimeSpan.FromSeconds(60));
        CollectionAssert.AreEqual(new[] { "host", "host" }, paths, "ZeroSharding reduces through host spans, so the step stays there");
    }

    /// <summary>One rank holding the whole model, expressed through the model-parallel hook (sums and flags pass through).</summary>
    private sealed class WholeModel : IModelParallelReduction
    {
        public double SumOfSquares(ReadOnlySpan<float> gradients, long layoutOffset) => GradientClipping.SumOfSquares(gradients);
        public double Sum(double local) => local;
        public bool Any(bool local) => local;
    }

    [TestMethod]
    [DataRow("fp32", "")]
    [DataRow("bf16", """, "bf16": { "enabled": true }""")]
    [DataRow("fp16", """, "fp16": { "enabled": true, "initial_scale_power": 22, "hysteresis": 1, "loss_scale_window": 4 }""")]
    public void AModelSplitOverRanksMovesTheStateBackToTheHostStep(string name, string precision)
    {
        string json = $$"""{ "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0, {{AdamW}}{{precision}} }""";
        TrainingEngine host = CreateEngine(json, fused: false), fused = CreateEngine(json, fused: true);
        BatchSampler hostSampler = Sampler(host), fusedSampler = Sampler(fused);
        AssertIdentical(Train(host, hostSampler, Updates / 2), Train(fused, fusedSampler, Updates / 2), $"{name}, fused half");

        host.ModelParallel = new WholeModel();
        fused.ModelParallel = new WholeModel();
        Assert.IsFalse(fused.FusedOptimizer, "the model-parallel hook needs the host step");
        AssertIdentical(Train(host, hostSampler, Updates), Train(fused, fusedSampler, Updates), $"{name}, after leaving the fused step");
    }

    [TestMethod]
    public void MastersWrittenThroughMasterWeightsReachTheFusedState()
    {
        string json = $$"""{ "train_micro_batch_size_per_gpu": 2, {{AdamW}}, "bf16": { "enabled": true } }""";
        TrainingEngine host = CreateEngine(json, fused: false), fused = CreateEngine(json, fused: true);
        BatchSampler hostSampler = Sampler(host), fusedSampler = Sampler(fused);
        Train(host, hostSampler, 3);
        Train(fused, fusedSampler, 3);
        foreach (TrainingEngine engine in new[] { host, fused })
        {
            Span<float> masters = engine.MasterWeights;
            for (int i = 0; i < masters.Length; i += 7) masters[i] *= 1.001f;
            engine.SyncWorkingParameters();
        }
        AssertIdentical(Train(host, hostSampler, 6), Train(fused, fusedSampler, 6), "after editing the masters");
    }
}
