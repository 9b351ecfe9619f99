using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Tests.Shared;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The "tensorboard" section on a real run: rank 0 writes DeepSpeed's tags into output_path/job_name, one point per
/// reported step at x = samples seen, each value the one metrics.csv reports for that step.
/// </summary>
[TestClass]
public sealed class TensorBoardTrainingTests
{
    [TestMethod]
    public void TheRunsMetricsLandAsScalarsUnderDeepSpeedsTags()
    {
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "ds.json"), board = Path.Combine(root, "board"), run = Path.Combine(root, "run");
        File.WriteAllText(config, $$"""
            { "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2, "steps_per_print": 2,
              "tensorboard": { "enabled": true, "output_path": "{{board}}", "job_name": "tiny" } }
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
        Directory.Delete(root, recursive: true);
    }
}
