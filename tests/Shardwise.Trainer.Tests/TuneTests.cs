using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Examples;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// <c>tune</c> on TinyGpt (CPU): every listed candidate is timed, the written ds_config_optimal.json is the fastest
/// row of experiments.csv and trains; sizes the memory plan rules out are never run; train refuses a search space.
/// </summary>
[TestClass]
public sealed class TuneTests
{
    [TestMethod]
    public void TunesTheListedCandidates_AndWritesTheFastestAsAConfigThatTrains()
    {
        string root = TrainerRun.TempDirectory(), config = Path.Combine(root, "ds_config.json"), output = Path.Combine(root, "tune");
        File.WriteAllText(config, """
            { "train_micro_batch_size_per_gpu": [1, 2], "zero_optimization": { "stage": [0, 1] },
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "autotuning": { "enabled": true, "start_profile_step": 2, "end_profile_step": 3, "metric": "throughput" } }
            """);

        string log = TrainerRun.Succeed("tune", "--config", config, "--output", output);
        StringAssert.Contains(log, "autotuning space: 4 candidate(s), 4 to time");
        string[] rows = File.ReadAllLines(Path.Combine(output, "autotuning_results", "experiments.csv"));
        Assert.AreEqual(5, rows.Length, string.Join("\n", rows));
        var measured = rows.Skip(1).Select(row => row.Split(',')).Select(f => (Stage: int.Parse(f[0], CultureInfo.InvariantCulture),
            Micro: int.Parse(f[1], CultureInfo.InvariantCulture), Samples: double.Parse(f[5], CultureInfo.InvariantCulture), Failure: f[7])).ToArray();
        Assert.IsTrue(measured.All(m => m.Failure.Length == 0 && m.Samples > 0), string.Join("\n", rows));
        var fastest = measured.MaxBy(m => m.Samples);

        string optimal = Path.Combine(output, "autotuning_results", "ds_config_optimal.json");
        var chosen = DeepSpeedConfig.Load(optimal).Config;
        Assert.AreEqual((fastest.Stage, fastest.Micro), (chosen.ZeroOptimization.Stage, chosen.MicroBatchPerGpu));
        StringAssert.Contains(log, $"best by throughput: ZeRO stage {fastest.Stage}, micro-batch {fastest.Micro}");
        TrainerRun.Succeed("train", "--config", optimal, "--steps", "1", "--output", Path.Combine(root, "train"), "--eval-interval", "0");

        var (code, _, errors) = TrainerRun.Run("train", "--config", config, "--steps", "1", "--output", Path.Combine(root, "refused"));
        Assert.AreEqual(2, code);
        StringAssert.Contains(errors, "$.train_micro_batch_size_per_gpu lists 2 candidates [1, 2]: they are autotuning's search space, which train cannot run; run tune");
    }

    /// <summary>
    /// No micro-batch in the config: powers of two up to 8, and a memory limit between what the plan gives micro-batch 2
    /// and 4: only 1 and 2 are timed, 4 and 8 are reported as not fitting, and nothing is allocated for them.
    /// </summary>
    [TestMethod]
    public void SizesThePlanRulesOutAreNeverRun()
    {
        string root = TrainerRun.TempDirectory(), config = Path.Combine(root, "ds_config.json"), output = Path.Combine(root, "tune");
        File.WriteAllText(config, """
            { "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "autotuning": { "enabled": true, "start_profile_step": 1, "end_profile_step": 1, "max_train_micro_batch_size_per_gpu": 8 } }
            """);
        var parsed = DeepSpeedConfig.Load(config).Config;
        long Planned(int micro) => TuneCommand.PlannedBytes<TinyGpt>(parsed with { MicroBatchPerGpu = micro, GradientAccumulationSteps = 1 }, 1, cuda: false);
        long limitMib = (Planned(2) + Planned(4)) / 2 >> 20;
        Assert.IsTrue(Planned(2) < limitMib << 20 && Planned(4) > limitMib << 20, $"the plan grows with the micro-batch: {Planned(2)}, {Planned(4)}");

        string log = TrainerRun.Succeed("tune", "--config", config, "--output", output, "--memory-limit-mib", limitMib.ToString(CultureInfo.InvariantCulture));
        StringAssert.Contains(log, "4 candidate(s), 2 to time");
        StringAssert.Contains(log, "| 0 | 4 | 1 |");
        StringAssert.Contains(log, "does not fit");
        string[] rows = File.ReadAllLines(Path.Combine(output, "autotuning_results", "experiments.csv"));
        CollectionAssert.AreEquivalent(new[] { "1", "2" }, rows.Skip(1).Select(row => row.Split(',')[1]).ToArray());
    }
}
