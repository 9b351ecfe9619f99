using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Tests.Shared;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The "tensorboard" and "csv_monitor" sections on a real run: rank 0 writes DeepSpeed's tags into output_path/job_name,
/// one point per reported step at x = samples seen, each value the one metrics.csv reports for that step.
/// </summary>
[TestClass]
public sealed class MonitorTrainingTests
{
    /// <summary>
    /// memory_breakdown: every report adds the process's measured memory beside the plan's; dump_state: the effective
    /// configuration before training; without them, neither.
    /// </summary>
    [TestMethod]
    public void MemoryBreakdownAndDumpStateAddTheirLines()
    {
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "ds.json");
        File.WriteAllText(config, """{ "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "steps_per_print": 1, "memory_breakdown": true, "dump_state": true }""");
        string output = TrainerRun.Succeed("train", "--config", config, "--steps", "3", "--eval-interval", "0", "--output", Path.Combine(root, "run"));
        // dump_state: the effective configuration, once, before training.
        StringAssert.Contains(output, "effective configuration (dump_state):" + Environment.NewLine + "$.activation_checkpointing");
        StringAssert.Contains(output, "$.memory_breakdown = true");
        Assert.IsTrue(output.IndexOf("$.train_micro_batch_size_per_gpu = 2", StringComparison.Ordinal) < output.IndexOf("step 1/3", StringComparison.Ordinal));
        var lines = output.Split('\n').Where(l => l.StartsWith("memory (measured, rank 0): ", StringComparison.Ordinal)).ToList();
        Assert.AreEqual(3, lines.Count, output);
        var match = System.Text.RegularExpressions.Regex.Match(lines[^1], @"host working set ([\d.]+)(\w+) \(peak ([\d.]+)(\w+)\), managed heap ([\d.]+)(\w+)$");
        Assert.IsTrue(match.Success, lines[^1]);
        double Bytes(int group) => double.Parse(match.Groups[group].Value, CultureInfo.InvariantCulture) * match.Groups[group + 1].Value switch
        {
            "KiB" => 1024.0, "MiB" => 1024.0 * 1024, "GiB" => 1024.0 * 1024 * 1024, _ => 1,
        };
        Assert.IsTrue(Bytes(5) > 1 << 20 && Bytes(1) > Bytes(5) && Bytes(3) >= Bytes(1) * 0.99, lines[^1]);

        File.WriteAllText(config, """{ "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "steps_per_print": 1 }""");
        string quiet = TrainerRun.Succeed("train", "--config", config, "--steps", "2", "--eval-interval", "0", "--output", Path.Combine(root, "run2"));
        Assert.IsFalse(quiet.Contains("memory (measured", StringComparison.Ordinal) || quiet.Contains("dump_state", StringComparison.Ordinal));
        Directory.Delete(root, recursive: true);
    }

    [TestMethod]
    public void TheRunsMetricsLandAsScalarsUnderDeepSpeedsTags()
    {
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "ds.json"), board = Path.Combine(root, "board"), run = Path.Combine(root, "run");
        File.WriteAllText(config, $$"""
            { "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2, "steps_per_print": 2,
              "tensorboard": { "enabled": true, "output_path": "{{board}}", "job_name": "tiny" },
              "csv_monitor": { "enabled": true, "job_name": "tiny-csv" } }
            """);
        string output = TrainerRun.Succeed("train", "--config", config, "--steps", "6", "--eval-interval", "3", "--output", run);
        var file = Directory.GetFiles(Path.Combine(board, "tiny")).Single();
        StringAssert.Contains(output, "tensorboard: scalars every 2 step(s) in " + file);

        var scalars = TensorBoardFiles.ReadScalars(file);
        var losses = scalars.Where(s => s.Tag == "Train/Samples/train_loss").ToList();
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.csv")).Skip(1).Select(line => line.Split(',')).ToList();
        CollectionAssert.AreEqual(rows.Select(r => long.Parse(r[0], CultureInfo.InvariantCulture) * 8).ToArray(), losses.Select(s => s.Step).ToArray(), "x = steps × 8 samples");
        CollectionAssert.AreEqual(rows.Select(r => (float)double.Parse(r[2], CultureInfo.InvariantCulture)).ToArray(), losses.Select(s => s.Value).ToArray(), "the CSV's losses");
        CollectionAssert.AreEqual(rows.Select(r => (float)double.Parse(r[5], CultureInfo.InvariantCulture)).ToArray(),
            scalars.Where(s => s.Tag == "Train/Samples/lr").Select(s => s.Value).ToArray(), "the CSV's learning rates");
        var validation = scalars.Where(s => s.Tag == "Train/Samples/val_loss").ToList();
        CollectionAssert.AreEqual(rows.Where(r => r[3].Length > 0).Select(r => (float)double.Parse(r[3], CultureInfo.InvariantCulture)).ToArray(),
            validation.Select(s => s.Value).ToArray(), "validation only where it ran");
        Assert.IsTrue(validation.Count >= 2, "evaluated at steps 3 and 6");

        // csv_monitor (output_path empty: under --output): one file per tag, DeepSpeed's names and header.
        string csv = Path.Combine(run, "csv_monitor", "tiny-csv");
        StringAssert.Contains(output, "csv_monitor: one file per metric every 2 step(s) in " + csv);
        var lossFile = File.ReadAllLines(Path.Combine(csv, "Train_Samples_train_loss.csv"));
        Assert.AreEqual("step,train_loss", lossFile[0]);
        CollectionAssert.AreEqual(losses.Select(s => s.Step).ToArray(), lossFile.Skip(1).Select(l => long.Parse(l.Split(',')[0], CultureInfo.InvariantCulture)).ToArray());
        CollectionAssert.AreEqual(rows.Select(r => r[2]).ToArray(), lossFile.Skip(1).Select(l => l.Split(',')[1]).ToArray(), "round-trip values, as metrics.csv has them");
        Assert.AreEqual(validation.Count + 1, File.ReadAllLines(Path.Combine(csv, "Train_Samples_val_loss.csv")).Length);
        CollectionAssert.AreEquivalent(scalars.Select(s => s.Tag.Replace('/', '_') + ".csv").Distinct().ToArray(), Directory.GetFiles(csv).Select(Path.GetFileName).ToArray(),
            "the same tags as TensorBoard");

        // A resumed run continues the files without a second header.
        TrainerRun.Succeed("train", "--config", config, "--steps", "8", "--eval-interval", "0", "--resume", run, "--output", run);
        var resumed = File.ReadAllLines(Path.Combine(csv, "Train_Samples_train_loss.csv"));
        Assert.AreEqual(1, resumed.Count(l => l.StartsWith("step,", StringComparison.Ordinal)));
        Assert.AreEqual("64", resumed[^1].Split(',')[0], "step 8 × 8 samples");
        Directory.Delete(root, recursive: true);
    }
}
