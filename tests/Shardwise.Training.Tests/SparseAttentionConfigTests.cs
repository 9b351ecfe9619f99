using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Sparsity;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

/// <summary>The sparse_attention section: DeepSpeed's defaults per mode, every key read, errors at their JSON paths.</summary>
[TestClass]
public sealed class SparseAttentionConfigTests
{
    private static ConfigLoadResult Parse(string sparse) =>
        DeepSpeedConfig.Parse($$"""{"train_batch_size": 8, "sparse_attention": {{sparse}}}""", "ds.json");

    private static ConfigException Fails(string sparse) => Assert.ThrowsExactly<ConfigException>(() => Parse(sparse));

    [TestMethod]
    public void AbsentSectionMeansDenseAttention()
    {
        Assert.IsNull(DeepSpeedConfig.Parse("""{"train_batch_size": 8}""").Config.SparseAttention);
    }

    [TestMethod]
    public void EmptySectionIsDeepSpeedsFixedDefault()
    {
        Assert.AreEqual(new SparseAttentionPattern(), Parse("{}").Config.SparseAttention);
        Assert.AreEqual("fixed, block 16, 4 local / 1 global blocks, bidirectional layout", Parse("{}").Config.SparseAttention!.Describe());
    }

    [TestMethod]
    public void EveryModeReadsItsKeys()
    {
        var variable = Parse("""
            {"mode": "variable", "block": 32, "num_random_blocks": 2, "local_window_blocks": [4, 2], "global_block_indices": [0, 5],
             "global_block_end_indices": [2, 6], "attention": "unidirectional", "different_layout_per_head": true}
            """).Config.SparseAttention!;
        Assert.AreEqual(SparseAttentionMode.Variable, variable.Mode);
        Assert.AreEqual(32, variable.Block);
        Assert.AreEqual(2, variable.NumRandomBlocks);
        CollectionAssert.AreEqual(new[] { 4, 2 }, variable.LocalWindowBlocks.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 5 }, variable.GlobalBlockIndices.ToArray());
        CollectionAssert.AreEqual(new[] { 2, 6 }, variable.GlobalBlockEndIndices!.ToArray());
        Assert.AreEqual(SparseAttentionDirection.Unidirectional, variable.Attention);
        Assert.IsTrue(variable.DifferentLayoutPerHead);

        var bigBird = Parse("""{"mode": "bigbird", "num_random_blocks": 3, "num_sliding_window_blocks": 5, "num_global_blocks": 2}""").Config.SparseAttention!;
        Assert.AreEqual((SparseAttentionMode.BigBird, 3, 5, 2), (bigBird.Mode, bigBird.NumRandomBlocks, bigBird.NumSlidingWindowBlocks, bigBird.NumGlobalBlocks));
        var longformer = Parse("""{"mode": "bslongformer", "num_sliding_window_blocks": 7, "global_block_indices": [1]}""").Config.SparseAttention!;
        Assert.AreEqual((SparseAttentionMode.BSLongformer, 7, 1), (longformer.Mode, longformer.NumSlidingWindowBlocks, longformer.GlobalBlockIndices.Single()));
        Assert.AreEqual(SparseAttentionMode.Dense, Parse("""{"mode": "dense"}""").Config.SparseAttention!.Mode);
    }

    [TestMethod]
    public void AKeyOfAnotherModeIsAWarning()
    {
        var result = Parse("""{"mode": "bigbird", "num_local_blocks": 8}""");
        var warning = result.Warnings.Single(w => w.Contains("num_local_blocks", StringComparison.Ordinal));
        StringAssert.Contains(warning, "$.sparse_attention.num_local_blocks");
        StringAssert.Contains(warning, "has no effect in mode \"bigbird\"; ignored (it belongs to fixed)");
    }

    [TestMethod]
    public void UnknownModeAndAttentionTypeAreErrorsAtTheirPaths()
    {
        StringAssert.Contains(Fails("""{"mode": "strided"}""").Message, "$.sparse_attention.mode: unknown sparsity mode \"strided\"; use dense, fixed, variable, bigbird or bslongformer");
        StringAssert.Contains(Fails("""{"attention": "causal"}""").Message, "$.sparse_attention.attention: unknown attention type \"causal\"");
        StringAssert.Contains(Fails("""{"mode": "variable", "local_window_blocks": [4, "x"]}""").Message, "$.sparse_attention.local_window_blocks: entry 1 is the string \"x\": expected an integer");
        StringAssert.Contains(Fails("""{"block": 0}""").Message, "$.sparse_attention.block: 0 is out of range: must be >= 1");
    }

    [TestMethod]
    public void DeepSpeedsOwnChecksAreErrors()
    {
        StringAssert.Contains(Fails("""{"num_local_blocks": 6, "num_global_blocks": 4}""").Message,
            "$.sparse_attention.num_local_blocks: 6 blocks per local window must be divisible by num_global_blocks (4)");
        StringAssert.Contains(Fails("""{"num_different_global_patterns": 2}""").Message,
            "$.sparse_attention.num_different_global_patterns: 2 different global patterns need different_layout_per_head = true");
        StringAssert.Contains(Fails("""{"num_different_global_patterns": 5, "different_layout_per_head": true}""").Message,
            "is more than num_local_blocks / num_global_blocks = 4");
        StringAssert.Contains(Fails("""{"attention": "unidirectional", "horizontal_global_attention": true}""").Message,
            "$.sparse_attention.horizontal_global_attention: needs attention = \"bidirectional\"");
        StringAssert.Contains(Fails("""{"mode": "bslongformer", "global_block_indices": [0, 3], "global_block_end_indices": [2]}""").Message,
            "$.sparse_attention.global_block_end_indices: has 1 entries and global_block_indices 2");
        StringAssert.Contains(Fails("""{"mode": "variable", "global_block_indices": [3], "global_block_end_indices": [3]}""").Message,
            "entry 0 is 3, not after its start 3");
    }

    [TestMethod]
    public void ATypoIsAnUnknownKeyWarningWithAHint()
    {
        var warning = Parse("""{"num_local_block": 8}""").Warnings.Single();
        StringAssert.Contains(warning, "$.sparse_attention.num_local_block");
        StringAssert.Contains(warning, "num_local_blocks");
    }
}
