using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Sparsity;
using Shardwise.Training.Cli;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// TinyGpt trained through the CLI with a sparse_attention section: the start-up line, the loss falling, the pattern
/// recorded in the checkpoint and applied again by eval and sample, a layout that changes the training (against the
/// same run dense), and a block that does not divide the context refused before any step.
/// </summary>
[TestClass]
public sealed class SparseAttentionTrainingTests
{
    private static string WriteConfig(string directory, string name, string? sparse)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, $$"""
            {
              "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1, "steps_per_print": 10,
              "optimizer": { "type": "AdamW", "params": { "lr": 3e-3, "weight_decay": 0.1 } }
              {{(sparse is null ? "" : ", \"sparse_attention\": " + sparse)}}
            }
            """);
        return path;
    }

    private static double[] Losses(string run)
    {
        string[] rows = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        int loss = System.Array.IndexOf(rows[0].Split(','), "loss");
        return rows.Skip(1).Select(row => double.Parse(row.Split(',')[loss], CultureInfo.InvariantCulture)).ToArray();
    }

    [TestMethod]
    public void TinyGptTrainsWithAFixedLayoutAndEvalAndSampleReuseIt()
    {
        var root = TrainerRun.TempDirectory();
        const string Sparse = """{ "mode": "fixed", "block": 8, "num_local_blocks": 2, "attention": "unidirectional" }""";
        string sparseConfig = WriteConfig(root, "sparse.json", Sparse), denseConfig = WriteConfig(root, "dense.json", null);
        string sparseRun = Path.Combine(root, "sparse"), denseRun = Path.Combine(root, "dense");

        string output = TrainerRun.Succeed("train", "--config", sparseConfig, "--steps", "40", "--output", sparseRun);
        StringAssert.Contains(output, "attention: block-sparse (fixed, block 8, 2 local / 1 global blocks, unidirectional layout): 8 blocks of 8 tokens per row, 67% of the causal score tiles kept (the GPU's flash kernels visit 100% of their 64×64 tiles)");
        TrainerRun.Succeed("train", "--config", denseConfig, "--steps", "40", "--output", denseRun);

        double[] sparse = Losses(sparseRun), dense = Losses(denseRun);
        Assert.IsTrue(sparse[^1] < sparse[0] - 0.5, $"the sparse run learns: {sparse[0]:F3} → {sparse[^1]:F3}");
        Assert.IsTrue(sparse.Zip(dense).Any(p => p.First != p.Second), "the layout changes the training (same seed, same data)");

        string checkpoint = TrainingCheckpoint.FindLatest(sparseRun)!;
        Assert.AreEqual(new SparseAttentionPattern { Block = 8, NumLocalBlocks = 2, Attention = SparseAttentionDirection.Unidirectional },
            TrainingCheckpoint.ReadSparseAttention(checkpoint), "state.json records the pattern");
        Assert.IsNull(TrainingCheckpoint.ReadSparseAttention(TrainingCheckpoint.FindLatest(denseRun)!));

        // eval over a config without the section: the checkpoint's pattern is applied, so the loss is the sparse model's.
        string sparseEval = TrainerRun.Succeed("eval", "--config", denseConfig, "--resume", sparseRun);
        StringAssert.Contains(sparseEval, "attention: block-sparse (fixed, block 8, 2 local / 1 global blocks, unidirectional layout), as the checkpoint trained");
        Assert.AreEqual(ValidationLoss(TrainerRun.Succeed("eval", "--config", sparseConfig, "--resume", sparseRun)), ValidationLoss(sparseEval));
        Assert.IsFalse(string.IsNullOrWhiteSpace(TrainerRun.Succeed("sample", "--resume", sparseRun, "--tokens", "20")));

        // Resuming the sparse run dense says so.
        StringAssert.Contains(TrainerRun.Succeed("train", "--config", denseConfig, "--steps", "41", "--resume", sparseRun, "--output", Path.Combine(root, "resumed")),
            "note: the checkpoint trained with block-sparse (fixed, block 8, 2 local / 1 global blocks, unidirectional layout) attention, this run uses dense");
    }

    private static string ValidationLoss(string evalOutput) =>
        evalOutput.Split('\n').Single(line => line.Contains("validation loss", System.StringComparison.Ordinal)).Trim();

    [TestMethod]
    public void PlanDrawsTheLayout()
    {
        var root = TrainerRun.TempDirectory();
        string config = WriteConfig(root, "ds.json", """{ "mode": "bslongformer", "block": 8, "num_sliding_window_blocks": 3, "global_block_indices": [0] }""");
        string plan = TrainerRun.Succeed("plan", "--config", config);
        StringAssert.Contains(plan, "attention: block-sparse (bslongformer, block 8, window 3, global [0], bidirectional layout): 8 blocks of 8 tokens per row");
        StringAssert.Contains(plan, "layout ('#' kept, '.' dropped; the attention is causal, so cells above the diagonal are never used):\n" +
            "########\n###.....\n####....\n#.###...\n#..###..\n#...###.\n#....###\n#.....##\n");
    }

    [TestMethod]
    public void AnArenaPastWhatTheCpuHoldsIsAnErrorWithWhatToChange()
    {
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "huge.json");
        File.WriteAllText(config, """{ "train_micro_batch_size_per_gpu": 6000, "gradient_accumulation_steps": 1 }""");
        var (code, output, errors) = TrainerRun.Run("bench", "--config", config, "--device", "cpu", "--steps", "1");
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(errors, "error: the CPU backend's activations arena would need");
        StringAssert.Contains(errors, "lower train_micro_batch_size_per_gpu");
    }

    [TestMethod]
    public void ABlockThatDoesNotDivideTheContextIsRefusedAtStartUp()
    {
        var root = TrainerRun.TempDirectory();
        string config = WriteConfig(root, "ds.json", """{ "block": 24 }""");
        var (code, output, errors) = TrainerRun.Run("train", "--config", config, "--steps", "5", "--output", Path.Combine(root, "run"));
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(errors, config + ": sparse_attention.block 24 does not divide the sequence length 64");
        Assert.IsFalse(Directory.Exists(Path.Combine(root, "run", "step-000005")), "no step ran");
    }
}
