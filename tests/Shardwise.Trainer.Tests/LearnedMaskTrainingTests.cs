using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// topk head, row and sparse pruning through the engine on <see cref="TinyGpt"/>: the scores train from their offsets,
/// each forward's weights are masked by the top scores while the masters keep every value, ZeRO-1 and 2 on two ranks
/// follow one process, and a resumed run continues bit for bit.
/// </summary>
[TestClass]
public sealed class LearnedMaskTrainingTests
{
    private const string Compression = """
        "compression_training": {
          "head_pruning": { "shared_parameters": { "enabled": true, "method": "topk", "num_heads": 4, "schedule_offset": 1 },
            "different_groups": { "hp1": { "params": { "dense_ratio": 0.5 }, "modules": ["attention\\.projection"] } } },
          "row_pruning": { "shared_parameters": { "enabled": true, "method": "topk", "schedule_offset": 2 },
            "different_groups": { "rp1": { "params": { "dense_ratio": 0.75 }, "modules": ["expand"] } } },
          "sparse_pruning": { "shared_parameters": { "enabled": true, "method": "topk", "schedule_offset": 0 },
            "different_groups": { "sp1": { "params": { "dense_ratio": 0.5 }, "modules": ["blocks\\.0\\.contract"] } } } },
        """;

    private static DeepSpeedConfig Config(int stage) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
          "optimizer": { "type": "AdamW", "params": { "lr": 5e-2, "weight_decay": 0.01 } }, {{Compression}}
          "zero_optimization": { "stage": {{stage}} } }
        """).Config;

    private sealed record Run(float[] Masters, float[] Working, float[] Scores, long[] ScoreSteps);

    private static Run Train(int stage, Distributed.ICommunicator communicator, int updates)
    {
        var (engine, next) = CompressionTrainingTests.Start(Config(stage), communicator);
        while (engine.GlobalStep < updates)
        {
            var (inputs, targets) = next();
            engine.Forward(inputs, targets);
            engine.Backward();
            engine.Step();
        }
        var learned = engine.Compression!.Learned!;
        return new Run(engine.ExportFullState().Master, engine.Program.Parameters.ToArray(),
            learned.Techniques.SelectMany(t => t.Scores).ToArray(), learned.Techniques.Select(t => t.Optimizer.State.Step).ToArray());
    }

    [TestMethod]
    public void ScoresTrainFromTheirOffsets_AndTheForwardSeesTheTopOnes()
    {
        const int updates = 5;
        var initial = Train(0, new Distributed.SingleProcessCommunicator(), 0);
        var run = Train(0, new Distributed.SingleProcessCommunicator(), updates);
        // Sparse from update 0, heads from 1, rows from 2: each technique's optimizer counts its own updates.
        CollectionAssert.AreEqual(new long[] { updates, updates - 2, updates - 1 }, run.ScoreSteps, "sparse, row, head score steps");
        int moved = run.Scores.Zip(initial.Scores).Count(p => p.First != p.Second);
        Assert.AreEqual(run.Scores.Length, moved, "every score of an active technique took its gradient");

        var layout = TinyGpt.ParameterLayout;
        foreach (int block in Enumerable.Range(0, TinyGpt.Depth))
        {
            var slot = layout.Slots.Single(s => s.Name == $"blocks.{block}.attention.projection.weight");
            int columns = slot.Shape[1], headColumns = columns / TinyGpt.Heads;
            var working = run.Working.AsSpan((int)slot.Offset, (int)slot.Length);
            var masters = run.Masters.AsSpan((int)slot.Offset, (int)slot.Length);
            int prunedHeads = 0;
            for (int h = 0; h < TinyGpt.Heads; h++)
            {
                bool zero = true, masterZero = true;
                for (int r = 0; r < slot.Shape[0]; r++)
                    for (int c = h * headColumns; c < (h + 1) * headColumns; c++)
                    {
                        zero &= working[r * columns + c] == 0;
                        masterZero &= masters[r * columns + c] == 0;
                    }
                if (zero) prunedHeads++;
                Assert.IsFalse(masterZero, $"block {block} head {h}: the masters keep the pruned head's weights (straight-through)");
            }
            Assert.AreEqual(TinyGpt.Heads / 2, prunedHeads, $"block {block}: dense_ratio 0.5 of 4 heads");
        }
        var expand = layout.Slots.Single(s => s.Name == "blocks.2.expand.weight");
        int zeroRows = Enumerable.Range(0, expand.Shape[0]).Count(r => run.Working.AsSpan((int)expand.Offset + r * expand.Shape[1], expand.Shape[1]).ToArray().All(v => v == 0));
        Assert.AreEqual(expand.Shape[0] / 4, zeroRows, "row pruning keeps 0.75 of the rows");
        var contract = layout.Slots.Single(s => s.Name == "blocks.0.contract.weight");
        Assert.AreEqual((int)contract.Length / 2, run.Working.AsSpan((int)contract.Offset, (int)contract.Length).ToArray().Count(v => v == 0), "sparse pruning keeps half the weights");
    }

    [TestMethod]
    public void ZeroOneAndTwoOnTwoRanksFollowOneProcess()
    {
        Run Ranks(int stage)
        {
            var ranks = InProcessGroup.Run(2, communicator => Train(stage, communicator, 4), TimeSpan.FromMinutes(2));
            CollectionAssert.AreEqual(ranks[0].Working, ranks[1].Working, $"stage {stage}: the ranks' working copies");
            CollectionAssert.AreEqual(ranks[0].Scores, ranks[1].Scores, $"stage {stage}: the ranks' scores");
            return ranks[0];
        }

        var whole = Ranks(0);
        foreach (int stage in new[] { 1, 2 })
        {
            var split = Ranks(stage);
            // ZeRO-1's ranks add their parts' score gradients over ranks: the same sums (bitwise here). ZeRO-2 reduces the
            // weights' gradients by bucketed reduce-scatter, in another order, which this learning rate (5e-2) amplifies
            // over the updates; a score gradient summed from half the gradients would be off by its whole size.
            double scores = TrainerRun.RelativeDifference(whole.Scores, split.Scores), masters = TrainerRun.RelativeDifference(whole.Masters, split.Masters);
            Console.WriteLine($"ZeRO-{stage} against ZeRO-0 with topk masks: scores {scores:E2}, masters {masters:E2}");
            double tolerance = stage == 1 ? 1e-6 : 1e-3;
            Assert.IsTrue(scores < tolerance && masters < tolerance, $"ZeRO-{stage}: scores {scores:E2}, masters {masters:E2}");
        }
    }

    [TestMethod]
    public void ResumingKeepsTheScoresBitForBit()
    {
        var root = TrainerRun.TempDirectory();
        var config = TrainerRun.WriteSmallConfig(root, "topk.json", Compression);
        string straight = Path.Combine(root, "straight"), split = Path.Combine(root, "split");
        var output = TrainerRun.Succeed("train", "--config", config, "--steps", "6", "--output", straight, "--eval-interval", "0");
        StringAssert.Contains(output, "compression: head pruning (topk) hp1: keeps 0.5 of each projection's 4 heads by learned scores from update 1; 4 module(s)");
        TrainerRun.Succeed("train", "--config", config, "--steps", "3", "--output", split, "--eval-interval", "0");
        TrainerRun.Succeed("train", "--config", config, "--steps", "6", "--resume", split, "--eval-interval", "0");
        foreach (var file in new[] { "model.safetensors", "optimizer.safetensors", "compression_scores.safetensors" })
            CollectionAssert.AreEqual(TrainerRun.TensorHashes(Path.Combine(straight, "step-000006", file)), TrainerRun.TensorHashes(Path.Combine(split, "step-000006", file)), $"{file}: straight against resumed");
        CollectionAssert.AreEqual(TrainerRun.MetricsColumn(straight, "loss"), TrainerRun.MetricsColumn(split, "loss"), "the losses of the resumed steps");

        // The export of what the next forward uses: the masks follow from the checkpoint's scores.
        string exported = Path.Combine(root, "compressed.safetensors");
        TrainerRun.Succeed("consolidate", "--resume", straight, "--output", exported, "--compressed", config);
        using var reader = SafeTensorsReader.Open(exported);
        var projection = new float[reader.GetInfo("blocks.1.attention.projection.weight").ElementCount];
        reader.Read("blocks.1.attention.projection.weight", projection);
        int columns = TinyGpt.Width, headColumns = columns / TinyGpt.Heads;
        int zeroHeads = Enumerable.Range(0, TinyGpt.Heads).Count(h => Enumerable.Range(0, columns)
            .All(r => projection.AsSpan(r * columns + h * headColumns, headColumns).ToArray().All(v => v == 0)));
        Assert.AreEqual(2, zeroHeads, "two of the four heads pruned in the export");
    }
}
