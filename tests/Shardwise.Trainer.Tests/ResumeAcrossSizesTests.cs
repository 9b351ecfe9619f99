using System;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Cli;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// Each rank writes its own ZeRO partition into the checkpoint; because the partitioning is a pure function of the
/// generated layout, a run saved on 4 ranks resumes on 2 (each rank re-slices) and consolidates to one fp32 file. The 2-rank continuation equals a 1-process continuation from the same checkpoint
/// with the same global batch, which fails if any rank took the wrong slice of the Adam state.
/// </summary>
[TestClass]
public sealed class ResumeAcrossSizesTests
{
    private static void Train(string[] args, int ranks)
    {
        var settings = RunSettings.Read(CliArguments.Parse(args), "TinyGpt", TextWriter.Null);
        if (ranks == 1)
        {
            Assert.AreEqual(0, TrainCommand.Run<TinyGpt>(settings, TextWriter.Null, new SingleProcessCommunicator()));
            return;
        }
        var codes = InProcessGroup.Run(ranks, group => TrainCommand.Run<TinyGpt>(settings, TextWriter.Null, group), TimeSpan.FromMinutes(2));
        CollectionAssert.AreEqual(new int[ranks], codes);
    }


    [TestMethod]
    public void SavedOnFourRanksResumesOnTwo()
    {
        var root = TrainerRun.TempDirectory();
        string four = Path.Combine(root, "four"), two = Path.Combine(root, "two"), one = Path.Combine(root, "one");
        Train(new[] { "train", "--config", TrainerRun.WriteZeroConfig(root, 1, 2), "--steps", "10", "--output", four, "--eval-interval", "0" }, ranks: 4);

        // Each rank wrote its own partition; nobody wrote (or needed) the full weights.
        var saved = Path.Combine(four, "step-000010");
        for (int rank = 0; rank < 4; rank++)
            Assert.IsTrue(File.Exists(Path.Combine(saved, TrainingCheckpoint.PartitionFile(rank, 4))), $"rank {rank}'s partition file");
        Assert.IsFalse(File.Exists(Path.Combine(saved, TrainingCheckpoint.ModelFile)));
        var consolidated = Path.Combine(root, "consolidated.safetensors");
        TrainerRun.Succeed("consolidate", "--resume", four, "--output", consolidated);
        CollectionAssert.AreEqual(TrainerRun.CheckpointWeights(saved), TrainerRun.Weights(consolidated));

        // Both continuations start from the 4-rank checkpoint and see 2 rows per micro-batch, 4 per optimizer step.
        foreach (var target in new[] { two, one }) TrainerRun.CopyDirectory(four, target);
        Train(new[] { "train", "--config", TrainerRun.WriteZeroConfig(root, 1, 1), "--steps", "20", "--resume", two, "--eval-interval", "0" }, ranks: 2);
        Train(new[] { "train", "--config", TrainerRun.WriteZeroConfig(root, 2, 0), "--steps", "20", "--resume", one, "--eval-interval", "0" }, ranks: 1);

        var a = TrainerRun.CheckpointWeights(Path.Combine(two, "step-000020"));
        var b = TrainerRun.CheckpointWeights(Path.Combine(one, "step-000020"));
        double relative = TrainerRun.RelativeDifference(a, b);
        Console.WriteLine($"4 → 2 ranks vs 4 → 1 process: relative weight difference {relative:E2}");
        Assert.IsTrue(relative < 1e-5, $"relative difference {relative:E2}");
        var before = TrainerRun.CheckpointWeights(Path.Combine(four, "step-000010"));
        Assert.IsFalse(before.SequenceEqual(a), "the continuation must have trained");
    }


}
