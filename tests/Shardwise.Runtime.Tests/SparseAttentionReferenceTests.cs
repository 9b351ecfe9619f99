using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;
using Shardwise.Sparsity;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// CpuOps.Attention with a block-sparse pattern against attention written out key by key in double over exactly the
/// keys <see cref="BlockSparseLayout.KeepsToken"/> allows; its parallel path (several (batch, head) pairs per core)
/// against the serial kernels; dense mode against no pattern at all. The gradients are checked against finite
/// differences in GradientTests (AttentionSparseBigBird, AttentionSparseFixed).
/// </summary>
[TestClass]
public sealed class SparseAttentionReferenceTests
{
    private const int Batch = 4, Sequence = 48, Heads = 4, Dim = 32, HeadDim = Dim / Heads;

    private static readonly SparseAttentionPattern Pattern = new()
    {
        Mode = SparseAttentionMode.Variable, Block = 4, LocalWindowBlocks = [3, 2], GlobalBlockIndices = [1, 7],
        NumRandomBlocks = 1, DifferentLayoutPerHead = true, Seed = 11,
    };

    /// <summary>Blocks of 16 over 160 tokens: the CPU kernels' query groups of 4 blocks, the last one of 2.</summary>
    private static readonly SparseAttentionPattern Grouped = new()
    {
        Mode = SparseAttentionMode.BigBird, Block = 16, NumRandomBlocks = 2, NumSlidingWindowBlocks = 1, NumGlobalBlocks = 1,
        DifferentLayoutPerHead = true, Seed = 6,
    };

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ForwardAttendsExactlyToTheKeysTheLayoutKeeps(bool grouped)
    {
        var (pattern, sequence) = grouped ? (Grouped, 160) : (Pattern, Sequence);
        var h = new OpHarness<double>(capacity: 1 << 19);
        h.Ops.AttentionSparsity = pattern;
        int tokens = Batch * sequence;
        double[] qkvValues = TestData.Uniform(21, tokens * 3 * Dim, scale: 1.5);
        Slice qkv = h.Activation(qkvValues), y = h.Activation(tokens * Dim), lse = h.Activation(Batch * Heads * sequence);
        h.Ops.Attention(qkv, y, lse, Batch, sequence, Heads, Dim);

        BlockSparseLayout layout = pattern.LayoutFor(Heads, sequence);
        Assert.IsTrue(layout.CausalDensity is > 0.3 and < 0.8, $"the test needs a layout that drops some keys and keeps others: {layout}");
        double[] expected = new double[tokens * Dim], expectedLse = new double[Batch * Heads * sequence];
        double scale = 1 / Math.Sqrt(HeadDim);
        for (int b = 0; b < Batch; b++)
        for (int head = 0; head < Heads; head++)
        for (int t = 0; t < sequence; t++)
        {
            double Score(int u)
            {
                double dot = 0;
                for (int d = 0; d < HeadDim; d++)
                    dot += qkvValues[(b * sequence + t) * 3 * Dim + head * HeadDim + d] * qkvValues[(b * sequence + u) * 3 * Dim + Dim + head * HeadDim + d];
                return scale * dot;
            }

            double max = double.NegativeInfinity, sum = 0;
            for (int u = 0; u < sequence; u++) if (layout.KeepsToken(head, t, u)) max = Math.Max(max, Score(u));
            for (int u = 0; u < sequence; u++)
            {
                if (!layout.KeepsToken(head, t, u)) continue;
                double p = Math.Exp(Score(u) - max);
                sum += p;
                for (int d = 0; d < HeadDim; d++)
                    expected[(b * sequence + t) * Dim + head * HeadDim + d] += p * qkvValues[(b * sequence + u) * 3 * Dim + 2 * Dim + head * HeadDim + d];
            }

            for (int d = 0; d < HeadDim; d++) expected[(b * sequence + t) * Dim + head * HeadDim + d] /= sum;
            expectedLse[(b * Heads + head) * sequence + t] = max + Math.Log(sum);
        }

        AssertClose(expected, h.Read(y), 1e-12, "y");
        AssertClose(expectedLse, h.Read(lse), 1e-12, "log-sum-exp");
    }

    [TestMethod]
    public void ParallelPathMatchesTheSerialKernels()
    {
        if (Environment.ProcessorCount < 2) Assert.Inconclusive("Needs at least two cores to take the parallel path.");
        var h = new OpHarness<double>(capacity: 1 << 18);
        h.Ops.AttentionSparsity = Pattern;
        int tokens = Batch * Sequence;
        double[] qkvValues = TestData.Uniform(22, tokens * 3 * Dim), dyValues = TestData.Uniform(23, tokens * Dim);
        double[] previous = TestData.Uniform(24, tokens * 3 * Dim);
        Slice qkv = h.Activation(qkvValues), dy = h.Activation(dyValues), dqkv = h.Activation(previous);
        Slice y = h.Activation(tokens * Dim), lse = h.Activation(Batch * Heads * Sequence);
        h.Ops.Attention(qkv, y, lse, Batch, Sequence, Heads, Dim);
        h.Ops.AttentionBackward(qkv, y, lse, dy, dqkv, Batch, Sequence, Heads, Dim, accumulate: true);

        var layout = Pattern.LayoutFor(Heads, Sequence);
        var serialY = new double[tokens * Dim];
        var serialLse = new double[Batch * Heads * Sequence];
        var serialDqkv = (double[])previous.Clone();
        AttentionKernels.Forward<double>(qkvValues, serialY, serialLse, new double[AttentionKernels.ScratchPerPair(Sequence, HeadDim, layout, backward: false)],
            Batch, Sequence, Heads, Dim, layout);
        AttentionKernels.Backward<double>(qkvValues, serialLse, dyValues, serialDqkv, new double[AttentionKernels.ScratchPerPair(Sequence, HeadDim, layout, backward: true)], Batch, Sequence,
            Heads, Dim, accumulate: true, layout);
        AssertClose(serialY, h.Read(y), 1e-13, "y");
        AssertClose(serialDqkv, h.Read(dqkv), 1e-13, "dqkv");

        // And the layout matters: without it the same inputs give other outputs.
        var dense = new double[tokens * Dim];
        AttentionKernels.Forward<double>(qkvValues, dense, new double[Batch * Heads * Sequence], new double[Sequence * Sequence], Batch, Sequence, Heads, Dim);
        Assert.IsTrue(MaxDifference(dense, serialY) > 1e-3, "sparse and dense attention agree: the layout was not applied");
    }

    [TestMethod]
    public void DenseModeIsTheCausalAttention()
    {
        int tokens = 2 * Sequence;
        double[] qkvValues = TestData.Uniform(25, tokens * 3 * Dim), dyValues = TestData.Uniform(26, tokens * Dim);
        double[][] results = new double[2][];
        foreach (int run in new[] { 0, 1 })
        {
            var h = new OpHarness<double>(capacity: 1 << 18);
            h.Ops.AttentionSparsity = run == 0 ? null : new SparseAttentionPattern { Mode = SparseAttentionMode.Dense, Block = 8 };
            Slice qkv = h.Activation(qkvValues), dy = h.Activation(dyValues), dqkv = h.Activation(tokens * 3 * Dim);
            Slice y = h.Activation(tokens * Dim), lse = h.Activation(2 * Heads * Sequence);
            h.Ops.Attention(qkv, y, lse, 2, Sequence, Heads, Dim);
            h.Ops.AttentionBackward(qkv, y, lse, dy, dqkv, 2, Sequence, Heads, Dim, accumulate: false);
            results[run] = [.. h.Read(y), .. h.Read(dqkv)];
        }

        CollectionAssert.AreEqual(results[0], results[1]);
    }

    private static double MaxDifference(double[] a, double[] b)
    {
        double max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    private static void AssertClose(double[] expected, double[] actual, double tolerance, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], tolerance * Math.Max(1, Math.Abs(expected[i])), $"{what}[{i}]");
    }
}
