using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

/// <summary>
/// The autotuning section and its search space: lists in train_micro_batch_size_per_gpu and zero_optimization.stage
/// only when autotuning is on, DeepSpeed's keys and defaults (config 09's start_step/end_step read as the profile
/// steps), and the candidates a plan's memory estimate lets through, before anything runs.
/// </summary>
[TestClass]
public sealed class AutotuningConfigTests
{
    private static ConfigLoadResult Parse(string json) => DeepSpeedConfig.Parse(json, "ds.json");

    [TestMethod]
    public void Config09_LoadsItsSearchSpace()
    {
        var overrides = new ConfigOverrides { GradientAccumulationSteps = 1, GradientClipping = 1.0, LearningRate = 1e-4, Betas = (0.9, 0.999), Eps = 1e-8, WeightDecay = 0.0, WarmupSteps = 10 };
        var result = DeepSpeedConfig.Load(TestPaths.Config("09_dse_autotuning_list_values.json"), overrides);
        var config = result.Config;
        Assert.IsNotNull(config.Autotuning);
        Assert.AreEqual((5, 10, AutotuningMetric.Latency), (config.Autotuning.StartProfileStep, config.Autotuning.EndProfileStep, config.Autotuning.Metric));
        CollectionAssert.AreEqual(new[] { 8 }, config.MicroBatchCandidates!.ToArray());
        Assert.AreEqual(8, config.MicroBatchPerGpu);
        string warnings = string.Join("\n", result.Warnings);
        StringAssert.Contains(warnings, "$.autotuning.start_step: read as start_profile_step");
        StringAssert.Contains(warnings, "$.autotuning.num_gpus: launcher or script setting with no effect here");
        Assert.IsNull(AutotuningCheck.RequireOneConfiguration(config with { Autotuning = null }, "train"), "one candidate: train runs it");
        StringAssert.Contains(AutotuningCheck.RequireOneConfiguration(config, "train"), "train runs the config as written (micro-batch 8, ZeRO stage 2)");
    }

    [TestMethod]
    public void Lists_AreTheSearchSpaceOnlyWithAutotuningOn()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => Parse("""{"train_micro_batch_size_per_gpu": [2, 4], "zero_optimization": {"stage": [0, 1]}}"""));
        StringAssert.Contains(error.Message, "$.train_micro_batch_size_per_gpu is a list [2, 4]: a list is autotuning's search space");
        StringAssert.Contains(error.Message, "$.zero_optimization.stage is a list [0, 1]");

        var config = Parse("""{"train_micro_batch_size_per_gpu": [2, 4], "zero_optimization": {"stage": [0, 2]}, "autotuning": {"enabled": true}}""").Config;
        CollectionAssert.AreEqual(new[] { 2, 4 }, config.MicroBatchCandidates!.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 2 }, config.ZeroOptimization.StageCandidates!.ToArray());
        var refused = Assert.ThrowsExactly<CliException>(() => AutotuningCheck.RequireOneConfiguration(config, "train"));
        StringAssert.Contains(refused.Message, "$.train_micro_batch_size_per_gpu lists 2 candidates [2, 4]: they are autotuning's search space, which train cannot run");

        var bad = Assert.ThrowsExactly<ConfigException>(() => Parse("""
            {"train_micro_batch_size_per_gpu": [2, "x"], "zero_optimization": {"stage": [0, 4]}, "autotuning": {"enabled": true, "metric": "speed", "start_profile_step": 6, "end_profile_step": 4}}
            """));
        StringAssert.Contains(bad.Message, "$.train_micro_batch_size_per_gpu[1]: expected an integer");
        StringAssert.Contains(bad.Message, "$.zero_optimization.stage[1]: 4 is out of range: must be between 0 and 3");
        StringAssert.Contains(bad.Message, "$.autotuning.metric: unknown metric \"speed\"");
        StringAssert.Contains(bad.Message, "$.autotuning.end_profile_step: 4 is before start_profile_step (6)");
    }

    /// <summary>
    /// A searched range (no micro-batch in the config) with a plan of 100 bytes per sample against a 450-byte limit:
    /// 1, 2 and 4 fit and are the three largest; 8 and 16 do not fit; train_batch_size 24 rules out 16 anyway.
    /// </summary>
    [TestMethod]
    public void Space_FromThePlansMemory_BeforeAnythingRuns()
    {
        var config = Parse("""{"zero_optimization": {"stage": [0, 1]}, "autotuning": {"enabled": true, "max_train_micro_batch_size_per_gpu": 16, "tuner_num_trials": 5}}""").Config;
        var space = AutotuningSpace.Build(config, config.Autotuning!, ranks: 1, limit: 450, "test", c => 100L * c.MicroBatchPerGpu!.Value);
        Assert.AreEqual(10, space.Candidates.Count);
        var stage0 = space.Candidates.Where(c => c.Stage == 0).ToDictionary(c => c.MicroBatch);
        Assert.IsNull(stage0[4].Skipped);
        Assert.IsNull(stage0[2].Skipped);
        Assert.IsNull(stage0[1].Skipped);
        StringAssert.Contains(stage0[8].Skipped, "does not fit: 800B > 450B");
        // Six fit (three per stage); tuner_num_trials 5 leaves the last out.
        Assert.AreEqual(5, space.ToTime.Count());
        StringAssert.Contains(space.Candidates.Last(c => c.Stage == 1 && c.MicroBatch <= 4).Skipped, "beyond tuner_num_trials (5)");
        StringAssert.Contains(space.Describe(), "| 0 | 8 | 1 | 800B | does not fit: 800B > 450B |");

        var fixedBatch = Parse("""{"train_batch_size": 24, "autotuning": {"enabled": true, "max_train_micro_batch_size_per_gpu": 16}}""").Config;
        var divided = AutotuningSpace.Build(fixedBatch, fixedBatch.Autotuning!, ranks: 1, limit: long.MaxValue, "test", c => 1);
        Assert.AreEqual(24 / 8, divided.Candidates.Single(c => c.MicroBatch == 8).GradientAccumulation);
        StringAssert.Contains(divided.Candidates.Single(c => c.MicroBatch == 16).Skipped, "train_batch_size 24 is not a multiple of micro-batch × ranks = 16");
    }

    [TestMethod]
    public void OptimalConfig_IsTheInputWithTheWinnersValues()
    {
        var config = Parse("""
            {"train_micro_batch_size_per_gpu": [2, 4], "gradient_accumulation_steps": 3, "zero_optimization": {"stage": [0, 2], "overlap_comm": true},
             "autotuning": {"enabled": true, "metric": "throughput"}}
            """).Config;
        string json = TuneCommand.OptimalConfigJson(config with { SourceName = "<no such file>" }, new AutotuningCandidate(2, 4, 3, 0, null));
        // Without a file the built-in default config is the base (its schedule lengths are "auto": the trainer fills them).
        var defaults = DeepSpeedConfig.Parse(json, "optimal.json", new ConfigOverrides { WarmupSteps = 10, TotalSteps = 100 }).Config;
        Assert.AreEqual((4, 2), (defaults.MicroBatchPerGpu, defaults.ZeroOptimization.Stage));

        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"shardwise-tune-{Guid.NewGuid():N}.json");
        System.IO.File.WriteAllText(path, """
            // a comment, as some configs carry
            {"train_micro_batch_size_per_gpu": [2, 4], "gradient_accumulation_steps": 3, "zero_optimization": {"stage": [0, 2], "overlap_comm": true},
             "autotuning": {"enabled": true, "metric": "throughput"},}
            """);
        try
        {
            var fromFile = DeepSpeedConfig.Load(path).Config;
            var optimal = Parse(TuneCommand.OptimalConfigJson(fromFile, new AutotuningCandidate(2, 4, 3, 0, null))).Config;
            Assert.AreEqual((4, 3, 2), (optimal.MicroBatchPerGpu, optimal.GradientAccumulationSteps, optimal.ZeroOptimization.Stage));
            Assert.IsNull(optimal.MicroBatchCandidates);
            Assert.IsNull(optimal.Autotuning, "switched off: the file is for train");
            Assert.IsTrue(optimal.ZeroOptimization.OverlapComm, "everything else as the user wrote it");
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }
}
