using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Optim;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The 1-bit optimizers in the engine, TinyGpt on in-process ranks: before its freeze step OneBitAdam is AdamW and
/// OneBitLamb is Lamb, both without bias correction (bit for bit, fp16 with loss scaling included); after it, gradients
/// are no longer averaged, each step sends a small fraction of the warm-up's bytes, every rank keeps the same weights and
/// the loss keeps falling; a run resumes past the freeze bit for bit; the plan predicts the compression's buffers.
/// </summary>
[TestClass]
public sealed class OneBitTrainingTests
{
    private static string Config(string optimizer, long freezeStep, string precision = "\"fp16\": { \"enabled\": false }") => $$"""
        { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
          "optimizer": { "type": "{{TypeOf(optimizer)}}", "params": { "lr": {{(optimizer.EndsWith("Lamb", StringComparison.Ordinal) ? "2e-2" : "2e-3")}}, "weight_decay": 0.01, "bias_correction": false{{OneBitSettings(optimizer, freezeStep)}} } },
          {{precision}} }
        """;

    // coeff_beta 0.5: the frozen trust ratio averages the last few warm-up steps, which the short warm-ups here allow.
    // factor_threshold 1e-4: TinyGpt's factor drifts by about 1e-3 a step, so the threshold holds it every step, and a
    // resumed run must restore the last factor to continue bit for bit.
    // ZeroOneAdam: its first local step is step freezeStep + 1, as the others' first compressed one; the scalers of 1
    // double the variance interval after every variance step and the local-step interval after every local step (up to
    // 4), so a checkpoint a step past the freeze holds local updates not yet synchronised.
    private static string OneBitSettings(string optimizer, long freezeStep) => optimizer switch
    {
        "OneBitAdam" => $", \"freeze_step\": {freezeStep}",
        "OneBitLamb" => $", \"freeze_step\": {freezeStep}, \"coeff_beta\": 0.5, \"factor_threshold\": 1e-4",
        "ZeroOneAdam" => $", \"var_freeze_step\": {freezeStep - 1}, \"var_update_scaler\": 1, \"local_step_scaler\": 1, \"local_step_clipper\": 4",
        // ZeroOneAdam with a variance interval that never grows: every warm-up step is a full (Adam) step.
        "ZeroOneAdamFull" => $", \"var_freeze_step\": {freezeStep - 1}, \"var_update_scaler\": 1000000",
        _ => "",
    };

    private static string TypeOf(string optimizer) => optimizer == "ZeroOneAdamFull" ? "ZeroOneAdam" : optimizer;

    private static TrainingEngine Engine(string json, ICommunicator communicator)
    {
        var config = DeepSpeedConfig.Parse(json).Config;
        var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool), 1);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 3);
        return TrainingEngine.Initialize(program, config, communicator);
    }

    /// <summary>Trains to <paramref name="steps"/> optimizer steps; returns each step's loss (as this rank saw it) and bytes sent.</summary>
    private static (float Loss, long Sent)[] Train(TrainingEngine engine, ICommunicator communicator, int steps)
    {
        int rows = TinyGpt.SequenceLength, ranks = communicator.Size;
        var sampler = new AdditionTask().CreateDataset(4000, seed: 5).CreateSampler(DataSplit.Train, ranks, rows, seed: 9);
        var inputs = new int[ranks * rows];
        var targets = new int[inputs.Length];
        var log = new System.Collections.Generic.List<(float, long)>();
        while (engine.GlobalStep < steps)
        {
            communicator.Traffic.Reset();
            float loss = 0;
            do
            {
                sampler.NextBatch(inputs, targets);
                loss = engine.Forward(inputs.AsSpan(communicator.Rank * rows, rows), targets.AsSpan(communicator.Rank * rows, rows));
                engine.Backward();
            } while (engine.Step() == StepOutcome.Accumulated);
            log.Add((loss, communicator.Traffic.TotalSent));
        }
        return [.. log];
    }

    [TestMethod]
    [DataRow("OneBitAdam", "AdamW", "fp32")]
    [DataRow("OneBitAdam", "AdamW", "fp16")]
    [DataRow("OneBitLamb", "Lamb", "fp32")]
    [DataRow("OneBitLamb", "Lamb", "fp16")]
    [DataRow("ZeroOneAdamFull", "AdamW", "fp32")]
    [DataRow("ZeroOneAdamFull", "AdamW", "fp16")]
    public void BeforeTheFreezeItIsItsUncompressedOptimizerWithoutBiasCorrection(string oneBit, string uncompressed, string precision)
    {
        string settings = precision == "fp16" ? "\"fp16\": { \"enabled\": true, \"initial_scale_power\": 20, \"hysteresis\": 1, \"loss_scale_window\": 3 }" : "\"fp16\": { \"enabled\": false }";
        float[] Run(string optimizer) => InProcessGroup.Run(2, communicator =>
        {
            var engine = Engine(Config(optimizer, freezeStep: 1000, settings), communicator);
            Train(engine, communicator, 8);
            return engine.ExportFullState().Master;
        }, TimeSpan.FromMinutes(2))[0];

        CollectionAssert.AreEqual(Run(uncompressed), Run(oneBit));
    }

    [TestMethod]
    [DataRow("OneBitAdam")]
    [DataRow("OneBitLamb")]
    public void AfterTheFreezeRanksStayEqualSendLittleAndTheLossFalls(string optimizer)
    {
        const int ranks = 2, freeze = 4, steps = 40;
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var engine = Engine(Config(optimizer, freeze), communicator);
            var log = Train(engine, communicator, steps);
            return (log, engine.ExportFullState().Master, engine.DescribeOptimizerStep(), engine.OneBit!.LocalGradients);
        }, TimeSpan.FromMinutes(3));

        var (log, master, step, compressing) = results[0];
        CollectionAssert.AreEqual(master, results[1].Master, "every rank keeps the same weights");
        Assert.IsTrue(compressing);
        StringAssert.Contains(step, "the momentum averaged with 1-bit compression and error feedback");
        long warmUp = log[1].Sent, compressed = log[freeze + 1].Sent;
        Console.WriteLine($"bytes sent per step by rank 0: warm-up {warmUp:N0}, compressed {compressed:N0} ({(double)warmUp / compressed:F1}× less)");
        Assert.IsTrue(compressed * 8 < warmUp, $"a compressed step sends {compressed:N0} bytes against the warm-up's {warmUp:N0}");
        double early = log.Take(5).Average(e => e.Loss), late = log.Skip(steps - 5).Average(e => e.Loss);
        Console.WriteLine($"loss: first 5 steps {early:F3}, last 5 {late:F3}");
        Assert.IsTrue(late < early - 0.2, $"the loss must keep falling after the freeze: {early:F3} → {late:F3}");
    }

    /// <summary>
    /// ZeroOneAdam on 2 ranks: after its variance freezes the ranks take local steps and synchronise at a growing
    /// interval; the loss keeps falling, a local step sends nothing and a synchronisation a small fraction of a full
    /// step's bytes, and at a synchronisation (the last step here) the ranks agree again to rounding.
    /// </summary>
    [TestMethod]
    public void ZeroOneAdamTakesLocalStepsAndSynchronisesCompressed()
    {
        // The variance must see enough steps before it freezes: an element whose variance is still near 0 then takes
        // updates m/(√v + ε) far beyond Adam's, and 1-bit compression cannot give it an exact zero momentum.
        const int ranks = 2, steps = 60;
        string json = Config("ZeroOneAdam", 21)
            .Replace("\"var_update_scaler\": 1", "\"var_update_scaler\": 8").Replace("\"local_step_scaler\": 1", "\"local_step_scaler\": 4");
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var engine = Engine(json, communicator);
            var log = Train(engine, communicator, steps);
            return (log, engine.ExportFullState().Master, engine.DescribeOptimizerStep(), ((ZeroOneAdam)engine.OneBit!).LocalStepInterval);
        }, TimeSpan.FromMinutes(3));

        var (log, master, step, interval) = results[0];
        StringAssert.Contains(step, "then local steps, the accumulated update synchronised with 1-bit compression");
        Assert.AreEqual(4, interval, "the local-step interval doubled to its clipper");
        // p − u brings each rank back to the last synchronised weights up to rounding, and the local steps move some
        // weights by tens (embedding rows the warm-up never saw have a frozen variance of 0, so m/(√v + ε) is huge), so
        // the ranks agree to about 1e-4 after a synchronisation, against units between them (DeepSpeed's arithmetic).
        double apart = master.Zip(results[1].Master, (a, b) => (double)Math.Abs(a - b)).Max();
        Assert.IsTrue(apart < 1e-3, $"step 60 synchronises: the ranks agree again ({apart:E2} apart)");
        long full = log[0].Sent, local = log[58].Sent, synchronised = log[59].Sent;
        Console.WriteLine($"bytes sent by rank 0: full step {full:N0}, local step {local:N0}, synchronisation {synchronised:N0}");
        Assert.IsTrue(local < full / 100 && synchronised * 8 < full, $"full {full:N0}, local {local:N0}, synchronisation {synchronised:N0}");
        double early = log.Take(5).Average(e => e.Loss), late = log.Skip(steps - 5).Average(e => e.Loss);
        Console.WriteLine($"loss: first 5 steps {early:F3}, last 5 {late:F3}");
        Assert.IsTrue(late < early - 0.2, $"the loss must keep falling after the freeze: {early:F3} → {late:F3}");
    }

    /// <summary>
    /// One process, past the freeze step: 10 steps equal 5 + save + resume + 5 bit for bit — the checkpoint's Adam step
    /// count brings the frozen stage back, with its momentum and frozen variance (one rank compresses nothing, so no
    /// compression error is lost on the way).
    /// </summary>
    [TestMethod]
    [DataRow("OneBitAdam")]
    [DataRow("OneBitLamb")]
    [DataRow("ZeroOneAdam")]
    public void AOneBitRunResumesPastItsFreezeStep(string optimizer)
    {
        var root = TrainerRun.TempDirectory();
        var config = System.IO.Path.Combine(root, "ds_onebit.json");
        System.IO.File.WriteAllText(config, Config(optimizer, freezeStep: 3).Replace("\"gradient_clipping\": 1.0,", "\"gradient_clipping\": 1.0, \"steps_per_print\": 100,"));
        string straight = System.IO.Path.Combine(root, "straight"), split = System.IO.Path.Combine(root, "split");
        TrainerRun.Succeed("train", "--config", config, "--steps", "10", "--output", straight, "--eval-interval", "0");
        TrainerRun.Succeed("train", "--config", config, "--steps", "5", "--output", split, "--eval-interval", "0");
        StringAssert.Contains(TrainerRun.Succeed("train", "--config", config, "--steps", "10", "--resume", split, "--eval-interval", "0"), "resumed from");
        var final = TrainerRun.CheckpointWeights(System.IO.Path.Combine(straight, "step-000010"));
        CollectionAssert.AreEqual(final, TrainerRun.CheckpointWeights(System.IO.Path.Combine(split, "step-000010")));
        Assert.AreNotEqual(0, TrainerRun.RelativeDifference(final, TrainerRun.CheckpointWeights(System.IO.Path.Combine(split, "step-000005"))));
    }

    /// <summary>
    /// A checkpoint from another optimizer has no 1-bit Lamb state: within the warm-up the trust ratios are averaged
    /// afresh (a note says so); past the freeze step they would be 0, so the resume stops with the reason.
    /// </summary>
    [TestMethod]
    public void OneBitLambResumesAnotherOptimizersCheckpointOnlyWithinItsWarmUp()
    {
        var root = TrainerRun.TempDirectory();
        string adamW = System.IO.Path.Combine(root, "ds_adamw.json"), warmUp = System.IO.Path.Combine(root, "ds_lamb_warm.json"),
            frozen = System.IO.Path.Combine(root, "ds_lamb_frozen.json"), run = System.IO.Path.Combine(root, "adamw");
        System.IO.File.WriteAllText(adamW, Config("AdamW", 0));
        System.IO.File.WriteAllText(warmUp, Config("OneBitLamb", freezeStep: 10));
        System.IO.File.WriteAllText(frozen, Config("OneBitLamb", freezeStep: 3));
        TrainerRun.Succeed("train", "--config", adamW, "--steps", "4", "--output", run, "--eval-interval", "0");

        var (code, output, errors) = TrainerRun.Run("train", "--config", frozen, "--steps", "6", "--resume", run, "--eval-interval", "0");
        Assert.AreNotEqual(0, code, output);
        StringAssert.Contains(errors, "no OneBitLamb state (*.exp_avg_sq_fresh, lamb_coeff_freeze, last_factor) in optimizer.safetensors: another optimizer wrote it, and this run is past its freeze step (4 >= 3)");
        StringAssert.Contains(TrainerRun.Succeed("train", "--config", warmUp, "--steps", "6", "--resume", run, "--eval-interval", "0"),
            "note: the checkpoint holds no OneBitLamb state (*.exp_avg_sq_fresh, lamb_coeff_freeze, last_factor); it starts afresh");
    }

    [TestMethod]
    [DataRow("OneBitAdam")]
    [DataRow("OneBitLamb")]
    [DataRow("ZeroOneAdam")]
    public void ThePlanPredictsTheCompressionBuffers(string optimizer)
    {
        const int ranks = 3;
        string json = Config(optimizer, 10);
        var config = DeepSpeedConfig.Parse(json).Config;
        var held = InProcessGroup.Run(ranks, communicator => Engine(json, communicator).Memory, TimeSpan.FromMinutes(1));
        for (int rank = 0; rank < ranks; rank++)
        {
            var planned = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool, config, ranks, rank, sizeof(float));
            Assert.AreEqual(planned, held[rank], $"rank {rank}: planned {planned.Describe()}, held {held[rank].Describe()}");
        }
        var adamW = DeepSpeedConfig.Parse(Config("AdamW", 0)).Config;
        var plain = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool, adamW, ranks, 0, sizeof(float));
        Assert.IsTrue(held[0].Buffers > plain.Buffers + 4L * TinyGpt.ParameterLayout.TotalElements, "the worker errors alone hold a padded copy of the model");
    }
}
