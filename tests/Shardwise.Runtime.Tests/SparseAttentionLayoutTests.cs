using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Sparsity;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// The layouts of each sparse_attention mode against DeepSpeed's SparsityConfig algorithms, worked by hand on small
/// grids ('#' kept, '.' dropped; row = query block, column = key block), and the checks that refuse a shape.
/// </summary>
[TestClass]
public sealed class SparseAttentionLayoutTests
{
    private static string Rows(params string[] rows) => string.Concat(rows.Select(r => r + "\n"));

    [TestMethod]
    public void FixedBidirectionalKeepsWindowsAndEachWindowsLastBlockForEveryRow()
    {
        var layout = new SparseAttentionPattern { Block = 2 }.LayoutFor(heads: 1, sequence: 16);
        Assert.AreEqual(Rows(
            "####...#",
            "####...#",
            "####...#",
            "####...#",
            "...#####",
            "...#####",
            "...#####",
            "...#####"), layout.Render(0));
    }

    [TestMethod]
    public void FixedUnidirectionalKeepsLowerTrianglesAndGlobalColumnsFromTheirOwnRow()
    {
        var layout = new SparseAttentionPattern { Block = 2, Attention = SparseAttentionDirection.Unidirectional }.LayoutFor(1, 16);
        Assert.AreEqual(Rows(
            "#.......",
            "##......",
            "###.....",
            "####....",
            "...##...",
            "...###..",
            "...####.",
            "...#####"), layout.Render(0));
    }

    [TestMethod]
    public void FixedWithDifferentGlobalPatternsShiftsTheRepresentativePerHead()
    {
        var pattern = new SparseAttentionPattern { Block = 1, DifferentLayoutPerHead = true, NumDifferentGlobalPatterns = 2 };
        var layout = pattern.LayoutFor(heads: 3, sequence: 8);
        Assert.AreEqual(Rows(
            "####..#.",
            "####..#.",
            "####..#.",
            "####..#.",
            "..#.####",
            "..#.####",
            "..#.####",
            "..#.####"), layout.Render(1), "head 1: the block before each window's last");
        Assert.AreEqual(layout.Render(0), layout.Render(2), "head 2 repeats head 0's pattern (h mod 2)");
        Assert.AreNotEqual(layout.Render(0), layout.Render(1));
    }

    [TestMethod]
    public void FixedShortLastWindowGetsAGlobalBlockClampedToTheRowEnd()
    {
        // 6 blocks in windows of 4: the second window is short (4, 5); its global block is min(4 + 3, 6 − 1) = 5.
        var layout = new SparseAttentionPattern { Block = 1 }.LayoutFor(1, 6);
        Assert.AreEqual(Rows(
            "####.#",
            "####.#",
            "####.#",
            "####.#",
            "...###",
            "...###"), layout.Render(0));
    }

    [TestMethod]
    public void VariableRepeatsTheLastWindowSizeAndKeepsGlobalColumns()
    {
        var pattern = new SparseAttentionPattern { Mode = SparseAttentionMode.Variable, Block = 4, LocalWindowBlocks = [2, 3] };
        Assert.AreEqual(Rows(
            "##......",
            "##......",
            "#.###...",
            "#.###...",
            "#.###...",
            "#....###",
            "#....###",
            "#....###"), pattern.LayoutFor(2, 32).Render(1));
    }

    [TestMethod]
    public void VariableGlobalWindowsWithHorizontalAttentionKeepWholeRows()
    {
        var pattern = new SparseAttentionPattern
        {
            Mode = SparseAttentionMode.Variable, Block = 1, LocalWindowBlocks = [2], GlobalBlockIndices = [2], GlobalBlockEndIndices = [4],
            HorizontalGlobalAttention = true,
        };
        Assert.AreEqual(Rows(
            "####..",
            "####..",
            "######",
            "######",
            "..####",
            "..####"), pattern.LayoutFor(1, 6).Render(0));
    }

    [TestMethod]
    public void BSLongformerKeepsASlidingWindowAndGlobalRowsAndColumns()
    {
        var pattern = new SparseAttentionPattern { Mode = SparseAttentionMode.BSLongformer, Block = 1 };
        Assert.AreEqual(Rows(
            "######",
            "###...",
            "####..",
            "#.###.",
            "#..###",
            "#...##"), pattern.LayoutFor(1, 6).Render(0));
        var causal = pattern with { Attention = SparseAttentionDirection.Unidirectional };
        Assert.AreEqual(Rows(
            "#.....",
            "##....",
            "###...",
            "#.##..",
            "#..##.",
            "#...##"), causal.LayoutFor(1, 6).Render(0), "unidirectional keeps the lower triangle");
    }

    [TestMethod]
    public void BigBirdRandomBlocksAreSeededAndEveryRowGetsThem()
    {
        var pattern = new SparseAttentionPattern { Mode = SparseAttentionMode.BigBird, Block = 1, NumRandomBlocks = 2, NumSlidingWindowBlocks = 1, NumGlobalBlocks = 0 };
        var layout = pattern.LayoutFor(1, 12);
        for (int row = 0; row < 12; row++)
        {
            int kept = Enumerable.Range(0, 12).Count(column => layout.Keeps(0, row, column));
            // The window (the diagonal) plus two distinct random blocks, one of which may be the diagonal itself.
            Assert.IsTrue(kept is 2 or 3, $"row {row} keeps {kept} blocks");
            Assert.IsTrue(layout.Keeps(0, row, row));
        }

        Assert.AreEqual(layout.Render(0), (pattern with { }).LayoutFor(1, 12).Render(0), "the same seed gives the same layout");
        Assert.AreNotEqual(layout.Render(0), (pattern with { Seed = 7 }).LayoutFor(1, 12).Render(0), "another seed another one");

        var global = (pattern with { NumGlobalBlocks = 2, NumRandomBlocks = 0 }).LayoutFor(1, 12);
        for (int i = 0; i < 12; i++)
            Assert.IsTrue(global.Keeps(0, 1, i) && global.Keeps(0, i, 1), $"block 1 is global: row and column, {i}");
    }

    [TestMethod]
    public void DifferentLayoutPerHeadDrawsRandomBlocksPerHead()
    {
        var pattern = new SparseAttentionPattern { Mode = SparseAttentionMode.Variable, Block = 1, NumRandomBlocks = 3, DifferentLayoutPerHead = true };
        var layout = pattern.LayoutFor(2, 16);
        Assert.AreNotEqual(layout.Render(0), layout.Render(1));
        var shared = (pattern with { DifferentLayoutPerHead = false }).LayoutFor(2, 16);
        Assert.AreEqual(shared.Render(0), shared.Render(1));
    }

    [TestMethod]
    public void DenseKeepsEverythingAndDensityCountsCausalTiles()
    {
        var dense = new SparseAttentionPattern { Mode = SparseAttentionMode.Dense, Block = 4 }.LayoutFor(2, 32);
        Assert.AreEqual(1.0, dense.CausalDensity);
        // Fixed over 8 blocks, bidirectional: on and below the diagonal, windows keep 2·10 tiles and the global
        // columns 3 and 7 add rows 4..7 of column 3: 4 more; of 36 causal tiles.
        var fixedLayout = new SparseAttentionPattern { Block = 2 }.LayoutFor(1, 16);
        Assert.AreEqual(24.0 / 36, fixedLayout.CausalDensity, 1e-12);
        Assert.IsTrue(fixedLayout.KeepsToken(0, 9, 6), "query 9 (block 4) sees key 6 (block 3, global)");
        Assert.IsFalse(fixedLayout.KeepsToken(0, 9, 4), "key 4 is in block 2: dropped");
        Assert.IsFalse(fixedLayout.KeepsToken(0, 9, 10), "a later key never, whatever the layout");
    }

    [TestMethod]
    public void ShapesThePatternDoesNotFitAreRefusedWithTheKeyAndTheNumbers()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => new SparseAttentionPattern { Block = 16 }.LayoutFor(2, 100));
        StringAssert.Contains(error.Message, "sparse_attention.block 16 does not divide the sequence length 100");
        error = Assert.ThrowsExactly<ArgumentException>(() =>
            new SparseAttentionPattern { Mode = SparseAttentionMode.BigBird, Block = 4, NumSlidingWindowBlocks = 5 }.LayoutFor(1, 16));
        StringAssert.Contains(error.Message, "num_sliding_window_blocks 5 is more than the 4 blocks");
        error = Assert.ThrowsExactly<ArgumentException>(() =>
            new SparseAttentionPattern { Mode = SparseAttentionMode.Variable, Block = 1, NumRandomBlocks = 9 }.LayoutFor(1, 8));
        StringAssert.Contains(error.Message, "num_random_blocks 9");
        error = Assert.ThrowsExactly<ArgumentException>(() => new SparseAttentionPattern { NumLocalBlocks = 6, NumGlobalBlocks = 4 }.LayoutFor(1, 64));
        StringAssert.Contains(error.Message, "sparse_attention.num_local_blocks: 6 blocks per local window must be divisible by num_global_blocks (4)");
    }

    [TestMethod]
    public void PatternsWithTheSameSettingsAreEqualAndShareLayouts()
    {
        var a = new SparseAttentionPattern { Mode = SparseAttentionMode.Variable, LocalWindowBlocks = [2, 3] };
        var b = new SparseAttentionPattern { Mode = SparseAttentionMode.Variable, LocalWindowBlocks = [2, 3] };
        Assert.AreEqual(a, b);
        Assert.AreSame(a.LayoutFor(1, 64), b.LayoutFor(1, 64));
        Assert.AreNotEqual(a, b with { LocalWindowBlocks = [2, 4] });
        Assert.AreNotSame(a.LayoutFor(1, 64), (b with { Block = 8 }).LayoutFor(1, 64));
        Assert.AreEqual(a, b with { NumLocalBlocks = 8 }, "a setting of another mode (fixed's) changes nothing");
        Assert.AreNotEqual(a, b with { GlobalBlockEndIndices = [2] });
        Assert.AreNotEqual(a, b.ForTensorRank(1, 2));
    }
}
