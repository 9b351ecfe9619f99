using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// The pipelined trainer reports like the data-parallel one: tensorboard, csv_monitor and memory_breakdown on world
/// rank 0, and comms_logger's summary of rank 0's calls in every group split from the logging world.
/// </summary>
[TestClass]
public sealed class PipelineMonitoringMpiTests
{
    [TestMethod]
    public void APipelinedRunWritesTheMonitorsAndTheCommsSummary()
    {
        using var run = new TrainingRun("PipelineGpt");
        string config = run.WriteConfig("monitors.json", """
            { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "steps_per_print": 1,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-2 } },
              "tensorboard": { "enabled": true, "job_name": "pipe" }, "csv_monitor": { "enabled": true },
              "memory_breakdown": true, "comms_logger": { "enabled": true } }
            """);
        string output = run.Train("monitored", ranks: 2, steps: 3, config: config);
        string log = File.ReadAllText(Path.Combine(output, "log.txt"));

        Assert.AreEqual(1, Directory.GetFiles(Path.Combine(output, "tensorboard", "pipe")).Length, log);
        var losses = File.ReadAllLines(Path.Combine(output, "csv_monitor", "DeepSpeedJobName", "Train_Samples_train_loss.csv"));
        Assert.AreEqual("step,train_loss", losses[0]);
        CollectionAssert.AreEqual(TrainingRun.Losses(output), losses.Skip(1).Select(l => double.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        Assert.AreEqual(3, log.Split('\n').Count(l => l.StartsWith("memory (measured, rank 0): host working set ", System.StringComparison.Ordinal)), log);

        // Stage 0 sends activations and receives gradients through the pipeline group split from the logging world.
        StringAssert.Contains(log, "comms_logger summary (rank 0's calls):");
        var summary = log[log.IndexOf("comms_logger summary", System.StringComparison.Ordinal)..];
        StringAssert.Contains(summary, "\nsend\n");
        StringAssert.Contains(summary, "\nrecv\n");
    }
}
