using System;
using System.Collections.Generic;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Plans;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// Training a [Checkpoint] model is training the same model: the same losses for 20 steps in one process, and under
/// ZeRO-3 on 2 ranks the same weights as one process (the recompute gathers the block's parameters again).
/// A config that asks for checkpoints of a model without [Checkpoint] gets one warning naming the JSON path.
/// </summary>
[TestClass]
public sealed class CheckpointedTrainingTests
{
    private static string Config(int micro, int stage) => $$"""
        { "train_micro_batch_size_per_gpu": {{micro}}, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
          "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
          "zero_optimization": { "stage": {{stage}}, "reduce_bucket_size": 5000,
                                 "stage3_param_persistence_threshold": 100, "stage3_prefetch_bucket_size": 6000 } }
        """;

    /// <summary>Trains a model for some steps; each rank takes its rows of the same global batch. Returns losses and the full weights.</summary>
    private static (List<float> Losses, float[] Weights) Train<TModel>(ICommunicator communicator, int stage, int microPerRank, int steps)
        where TModel : ILanguageModelDefinition
    {
        var config = DeepSpeedConfig.Parse(Config(microPerRank, stage)).Config;
        var (losses, engine, _) = GlobalBatchTraining.Train<TModel>(communicator, config, microPerRank, steps, afterBackward: engine =>
        {
            if (stage == 3 && communicator.Size > 1 && engine.GlobalStep > 0)
                Assert.IsTrue(engine.PrefetchHits > 0, "ZeRO-3 must serve requests from the static-order prefetch, recompute included");
        });
        return (losses, engine.ExportFullState().Master);
    }

    [TestMethod]
    public void TwentyStepsGiveTheSameLossesWithAndWithoutCheckpointing()
    {
        var plain = Train<SmallGpt>(new SingleProcessCommunicator(), stage: 0, microPerRank: 2, steps: 20);
        var checkpointed = Train<CheckpointedSmallGpt>(new SingleProcessCommunicator(), stage: 0, microPerRank: 2, steps: 20);

        Assert.AreEqual(40, plain.Losses.Count, "20 steps of 2 micro-batches");
        CollectionAssert.AreEqual(plain.Losses, checkpointed.Losses, "losses differ");
        CollectionAssert.AreEqual(plain.Weights, checkpointed.Weights, "weights differ after 20 steps");
        Assert.IsTrue(plain.Losses[^1] < plain.Losses[0], $"training must learn: {plain.Losses[0]} → {plain.Losses[^1]}");
        Console.WriteLine($"loss {plain.Losses[0]:F4} → {plain.Losses[^1]:F4}; arena per sample {SmallGpt.ActivationPlan.ArenaElementsPerSample} → {CheckpointedSmallGpt.ActivationPlan.ArenaElementsPerSample} elements");
        Assert.IsTrue(CheckpointedSmallGpt.ActivationPlan.ArenaElementsPerSample < SmallGpt.ActivationPlan.ArenaElementsPerSample);
    }

    /// <summary>
    /// [Checkpoint(InputsOnHost = true)] through the engine: the same losses and weights as the checkpointed twin for 20
    /// steps at ZeRO-3 on 2 ranks (the host copies beside the streamed parameters), and the memory report moves the
    /// blocks' inputs from the device arena to host memory, as the plan predicts.
    /// </summary>
    [TestMethod]
    public void InputsOnTheHostTrainAsTheCheckpointedTwinAndMoveToHostMemory()
    {
        const int Steps = 20, Ranks = 2;
        var twin = InProcessGroup.Run(Ranks, c => Train<CheckpointedSmallGpt>(c, stage: 3, microPerRank: 1, steps: Steps), TimeSpan.FromMinutes(2));
        var onHost = InProcessGroup.Run(Ranks, c => Train<HostCheckpointedSmallGpt>(c, stage: 3, microPerRank: 1, steps: Steps), TimeSpan.FromMinutes(2));
        for (int rank = 0; rank < Ranks; rank++)
        {
            CollectionAssert.AreEqual(twin[rank].Losses, onHost[rank].Losses, $"rank {rank}: losses differ");
            CollectionAssert.AreEqual(twin[rank].Weights, onHost[rank].Weights, $"rank {rank}: weights differ");
        }

        var config = DeepSpeedConfig.Parse(Config(4, 0)).Config;
        MemoryReport Report<TModel>() where TModel : ILanguageModelDefinition
        {
            var program = TModel.Compile(TrainingEngine.CreateBackend(config, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool), 4);
            return TrainingEngine.Initialize(program, config).Memory;
        }
        var device = Report<CheckpointedSmallGpt>();
        var host = Report<HostCheckpointedSmallGpt>();
        long stored = 4L * HostCheckpointedSmallGpt.ActivationPlan.HostElementsPerSample * sizeof(float);
        Console.WriteLine($"micro-batch 4: checkpointed {device.Describe()} (host {device.Host:N0} B); inputs on the host {host.Describe()} (host {host.Host:N0} B, of which {stored:N0} B inputs)");
        Assert.IsTrue(stored > 0);
        Assert.AreEqual(device.Host + stored, host.Host, "the stored inputs are host memory");
        Assert.IsTrue(host.Device < device.Device, "the device arena is smaller");
        Assert.AreEqual(MemoryPlan.Predict(HostCheckpointedSmallGpt.ParameterLayout, HostCheckpointedSmallGpt.ActivationPlan, HostCheckpointedSmallGpt.GradientPool,
            HostCheckpointedSmallGpt.ParameterPool, config, 1, 0, workingBytes: sizeof(float)), host, "the plan predicts what the engine holds");
    }

    [TestMethod]
    public void ZeroThreeWithCheckpointingEqualsOneProcess()
    {
        const int Steps = 5, Ranks = 2;
        var reference = Train<CheckpointedSmallGpt>(new SingleProcessCommunicator(), stage: 0, microPerRank: Ranks, steps: Steps);
        var results = InProcessGroup.Run(Ranks, c => Train<CheckpointedSmallGpt>(c, stage: 3, microPerRank: 1, steps: Steps).Weights, TimeSpan.FromMinutes(2));

        CollectionAssert.AreEqual(results[0], results[1], "the ranks hold different parameters");
        double relative = TrainerRun.RelativeDifference(results[0], reference.Weights);
        Console.WriteLine($"ZeRO-3, 2 ranks, checkpointed blocks: relative difference to one process {relative:E2}");
        Assert.IsTrue(relative < 1e-5, $"relative difference {relative:E2}");

        var initial = new float[CheckpointedSmallGpt.ParameterLayout.TotalElements];
        CheckpointedSmallGpt.ParameterLayout.Initialize<float>(initial, seed: 3);
        Assert.IsTrue(TrainerRun.RelativeDifference(results[0], initial) > 1e-3, "training must have moved the weights");
    }

    [TestMethod]
    public void ConfigAskingForCheckpointsOfAModelWithoutThemWarnsOnce()
    {
        var root = TrainerRun.TempDirectory();
        var config = Path.Combine(root, "ds_config.json");
        File.WriteAllText(config, """
            { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "activation_checkpointing": { "partition_activations": false, "contiguous_memory_optimization": true, "number_checkpoints": 4 } }
            """);

        var output = TrainerRun.Succeed("plan", "--config", config);

        const string warning = "config warning: $.activation_checkpointing: asks for activation checkpoints, but TinyGpt has no [Checkpoint] layer";
        StringAssert.Contains(output, warning);
        Assert.AreEqual(output.IndexOf(warning, StringComparison.Ordinal), output.LastIndexOf(warning, StringComparison.Ordinal), "one warning");
        StringAssert.Contains(output, "put [Checkpoint] on the layers to recompute");
    }

    [TestMethod]
    public void CheckpointedModelOrSilentConfigGetsNoWarning()
    {
        var asks = DeepSpeedConfig.Parse("""{ "activation_checkpointing": { "number_checkpoints": 2 } }""").Config.ActivationCheckpointing;
        var silent = DeepSpeedConfig.Parse("{ }").Config.ActivationCheckpointing;
        Assert.IsTrue(asks.IsRequested);
        Assert.IsFalse(silent.IsRequested);
        Assert.IsNull(ActivationCheckpointingCheck.Warning(asks, nameof(CheckpointedSmallGpt), CheckpointedSmallGpt.PlanReport));
        Assert.IsNull(ActivationCheckpointingCheck.Warning(silent, nameof(SmallGpt), SmallGpt.PlanReport));
        Assert.IsNotNull(ActivationCheckpointingCheck.Warning(asks, nameof(SmallGpt), SmallGpt.PlanReport));
    }

    /// <summary>
    /// The pipeline section's build-time keys: activation_checkpoint_interval against the model's [Checkpoint] layers,
    /// and a partition method other than the default, which cannot re-cut compiled stages; the defaults say nothing.
    /// </summary>
    [TestMethod]
    public void PipelineCheckpointIntervalAndPartitionMethodAreCheckedAgainstTheModel()
    {
        var asks = DeepSpeedConfig.Parse("""{ "pipeline": { "activation_checkpoint_interval": 1, "partition": "parameters" } }""").Config.Pipeline;
        var defaults = DeepSpeedConfig.Parse("{ }").Config.Pipeline;
        string plain = string.Join("\n", PipelineSectionCheck.Warnings(asks, nameof(SmallGpt), SmallGpt.PlanReport));
        StringAssert.Contains(plain, "$.pipeline.activation_checkpoint_interval: asks for a checkpoint every 1 layer(s), but SmallGpt has no [Checkpoint] layer");
        StringAssert.Contains(plain, "$.pipeline.partition: \"parameters\" is not applied: SmallGpt's stages were cut when it was compiled");
        string checkpointed = string.Join("\n", PipelineSectionCheck.Warnings(asks, nameof(CheckpointedSmallGpt), CheckpointedSmallGpt.PlanReport));
        StringAssert.Contains(checkpointed, "$.pipeline.partition");
        Assert.IsFalse(checkpointed.Contains("activation_checkpoint_interval"), checkpointed);
        Assert.AreEqual(0, PipelineSectionCheck.Warnings(defaults, nameof(SmallGpt), SmallGpt.PlanReport).Count);
    }

    [TestMethod]
    public void WherePartitionedOrHostCheckpointsAreAskedForTheModelDecides()
    {
        var loaded = DeepSpeedConfig.Parse("""{ "activation_checkpointing": { "partition_activations": true, "cpu_checkpointing": true, "profile": true } }""");
        var warnings = string.Join("\n", loaded.Warnings);
        Assert.IsFalse(warnings.Contains("partition_activations"), "partition_activations is checked against the model: " + warnings);
        StringAssert.Contains(warnings, "$.activation_checkpointing.profile: known DeepSpeed feature not supported by Shardwise yet");
        Assert.IsFalse(warnings.Contains("cpu_checkpointing"), "with partition_activations, cpu_checkpointing is checked against the model: " + warnings);

        // cpu_checkpointing is [Checkpoint(InputsOnHost = true)]: a checkpointed model without it gets the warning.
        var config = loaded.Config.ActivationCheckpointing;
        StringAssert.Contains(ActivationCheckpointingCheck.Warning(config, nameof(CheckpointedSmallGpt), CheckpointedSmallGpt.PlanReport),
            "$.activation_checkpointing.cpu_checkpointing: asks for checkpoints in host memory, but CheckpointedSmallGpt's [Checkpoint] layers keep their inputs on the device; this is decided when the model is built: write [Checkpoint(InputsOnHost = true)] on them");
        Assert.IsNull(ActivationCheckpointingCheck.Warning(config with { PartitionActivations = false }, nameof(CheckpointedSmallGpt), CheckpointedSmallGpt.PlanReport),
            "without partition_activations DeepSpeed offloads nothing, and the config check says so");
        // partition_activations alone is [Checkpoint(PartitionInputs = true)] (Pipeline.Tests checks a model that has it).
        StringAssert.Contains(ActivationCheckpointingCheck.Warning(config with { CpuCheckpointing = false }, nameof(CheckpointedSmallGpt), CheckpointedSmallGpt.PlanReport),
            "$.activation_checkpointing.partition_activations: asks for checkpoints split over the tensor-parallel ranks, but CheckpointedSmallGpt's [Checkpoint] layers keep their inputs whole on every rank; this is decided when the model is built: write [Checkpoint(PartitionInputs = true)] on them (in a model planned for Tensor above 1)");
        var alone = DeepSpeedConfig.Parse("""{ "activation_checkpointing": { "cpu_checkpointing": true } }""");
        StringAssert.Contains(string.Join("\n", alone.Warnings), "$.activation_checkpointing.cpu_checkpointing: has no effect without partition_activations (DeepSpeed only offloads partitioned activations); Shardwise keeps checkpointed inputs in host memory where the model says [Checkpoint(InputsOnHost = true)]");
    }
}
