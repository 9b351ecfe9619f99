using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Kernels.Tests.Infrastructure;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The CPU reference of random-LTD's token gather and scatter (TokenDropKernels), which token_drop.cu is checked
/// against: each kernel against a plain loop over a kept-token mask (no binary search), the gradients against float64
/// central differences, the accumulate semantics, and the rejection of kept rows that do not rise strictly.
/// </summary>
[TestClass]
public sealed class TokenDropCpuKernelTests
{
    private static readonly (int Batch, int Sequence, int Kept, int Dim)[] Shapes =
        [(1, 1, 1, 1), (2, 7, 3, 5), (3, 16, 16, 4), (2, 33, 10, 3), (4, 9, 1, 2), (2, 8, 7, 3)];

    [TestMethod]
    public void ScatterOfTheGatherGivesTheInputBack()
    {
        var data = new TestData(100);
        foreach ((int batch, int sequence, int kept, int dim) in Shapes)
        {
            float[] x = data.NonZero((long)batch * sequence * dim);
            int[] tokens = data.KeptTokens(batch, sequence, kept);
            var packed = new float[batch * kept * dim];
            TokenDropKernels.Gather<float>(x, tokens, packed, batch, sequence, kept, dim);
            var y = data.NonZero(x.Length);
            TokenDropKernels.Scatter<float>(x, packed, tokens, y, batch, sequence, kept, dim);
            CollectionAssert.AreEqual(x, y, Label(batch, sequence, kept, dim));
        }
    }

    [TestMethod]
    public void EachKernelMatchesALoopOverTheKeptMask()
    {
        var data = new TestData(101);
        foreach ((int batch, int sequence, int kept, int dim) in Shapes)
        {
            string label = Label(batch, sequence, kept, dim);
            int[] tokens = data.KeptTokens(batch, sequence, kept);
            int[,] position = Positions(tokens, batch, sequence, kept);
            float[] full = data.NonZero((long)batch * sequence * dim), packed = data.NonZero((long)batch * kept * dim);

            var gathered = data.NonZero(packed.Length);
            TokenDropKernels.Gather<float>(full, tokens, gathered, batch, sequence, kept, dim);
            var scattered = data.NonZero(full.Length);
            TokenDropKernels.Scatter<float>(full, packed, tokens, scattered, batch, sequence, kept, dim);
            for (int b = 0; b < batch; b++)
            for (int t = 0; t < sequence; t++)
            for (int d = 0; d < dim; d++)
            {
                int j = position[b, t];
                float expected = j >= 0 ? packed[((b * kept) + j) * dim + d] : full[((b * sequence) + t) * dim + d];
                Assert.AreEqual(expected, scattered[((b * sequence) + t) * dim + d], $"scatter {label} at ({b}, {t}, {d})");
                if (j >= 0) Assert.AreEqual(full[((b * sequence) + t) * dim + d], gathered[((b * kept) + j) * dim + d], $"gather {label} at ({b}, {j}, {d})");
            }

            foreach (bool accumulate in new[] { false, true })
            {
                float[] before = data.NonZero(full.Length);
                float[] fromGather = (float[])before.Clone(), fromScatter = (float[])before.Clone();
                TokenDropKernels.GatherBackward<float>(packed, tokens, fromGather, batch, sequence, kept, dim, accumulate);
                TokenDropKernels.ScatterBackward<float>(full, tokens, fromScatter, batch, sequence, kept, dim, accumulate);
                for (int b = 0; b < batch; b++)
                for (int t = 0; t < sequence; t++)
                for (int d = 0; d < dim; d++)
                {
                    int i = ((b * sequence) + t) * dim + d, j = position[b, t];
                    float start = accumulate ? before[i] : 0f;
                    float gatherGradient = j >= 0 ? packed[((b * kept) + j) * dim + d] : 0f;
                    float scatterGradient = j >= 0 ? 0f : full[i];
                    Assert.AreEqual(start + gatherGradient, fromGather[i], $"gather backward {label}, accumulate {accumulate}, at ({b}, {t}, {d})");
                    Assert.AreEqual(start + scatterGradient, fromScatter[i], $"scatter backward {label}, accumulate {accumulate}, at ({b}, {t}, {d})");
                }
            }
        }
    }

    /// <summary>
    /// A random-LTD layer end to end: y = Scatter(x, Gather(x)²) and the loss Σ w·y. Its gradient, Scatter's backward
    /// towards x overwriting, then Gather's backward of 2·Gather(x)·Gather(w) accumulating, equals the central
    /// differences of the loss in float64 at every element of x.
    /// </summary>
    [TestMethod]
    public void GradientsMatchFiniteDifferences()
    {
        var data = new TestData(102);
        foreach ((int batch, int sequence, int kept, int dim) in Shapes)
        {
            double[] x = data.NonZero((long)batch * sequence * dim).Select(v => (double)v).ToArray();
            double[] w = data.NonZero(x.Length).Select(v => (double)v).ToArray();
            int[] tokens = data.KeptTokens(batch, sequence, kept);
            int packedLength = batch * kept * dim;

            var dx = new double[x.Length];
            TokenDropKernels.ScatterBackward<double>(w, tokens, dx, batch, sequence, kept, dim, accumulate: false);
            var gathered = new double[packedLength];
            var dLayer = new double[packedLength];
            TokenDropKernels.Gather<double>(x, tokens, gathered, batch, sequence, kept, dim);
            TokenDropKernels.Gather<double>(w, tokens, dLayer, batch, sequence, kept, dim);  // Scatter's backward towards the layer
            for (int i = 0; i < packedLength; i++) dLayer[i] *= 2 * gathered[i];
            TokenDropKernels.GatherBackward<double>(dLayer, tokens, dx, batch, sequence, kept, dim, accumulate: true);

            const double step = 1e-4;
            for (int i = 0; i < x.Length; i++)
            {
                double saved = x[i];
                x[i] = saved + step;
                double above = Loss(x, w, tokens, batch, sequence, kept, dim);
                x[i] = saved - step;
                double below = Loss(x, w, tokens, batch, sequence, kept, dim);
                x[i] = saved;
                Assert.AreEqual((above - below) / (2 * step), dx[i], 1e-8, $"{Label(batch, sequence, kept, dim)}: dx[{i}]");
            }
        }
    }

    [TestMethod]
    public void AccumulatingLeavesTheRowsWithoutGradientAsTheyWere()
    {
        var data = new TestData(103);
        const int batch = 2, sequence = 6, kept = 2, dim = 3;
        int[] tokens = [1, 4, 0, 5];
        float[] dy = data.NonZero(batch * sequence * dim), packed = data.NonZero(batch * kept * dim);
        float[] before = data.NonZero(dy.Length);

        float[] fromGather = (float[])before.Clone(), fromScatter = (float[])before.Clone();
        TokenDropKernels.GatherBackward<float>(packed, tokens, fromGather, batch, sequence, kept, dim, accumulate: true);
        TokenDropKernels.ScatterBackward<float>(dy, tokens, fromScatter, batch, sequence, kept, dim, accumulate: true);
        for (int b = 0; b < batch; b++)
        for (int t = 0; t < sequence; t++)
        {
            bool isKept = tokens.AsSpan(b * kept, kept).Contains(t);
            int row = ((b * sequence) + t) * dim;
            for (int d = row; d < row + dim; d++)
            {
                // A kept row gains from the gather's gradient and not from the scatter's; a dropped row the other way.
                if (isKept)
                {
                    Assert.AreNotEqual(before[d], fromGather[d], $"gather backward adds to kept ({b}, {t})");
                    Assert.AreEqual(before[d], fromScatter[d], $"scatter backward leaves kept ({b}, {t})");
                }
                else
                {
                    Assert.AreEqual(before[d], fromGather[d], $"gather backward leaves dropped ({b}, {t})");
                    Assert.AreEqual(before[d] + dy[d], fromScatter[d], $"scatter backward adds to dropped ({b}, {t})");
                }
            }
        }

        // Accumulating twice adds twice: accumulate never overwrites.
        TokenDropKernels.GatherBackward<float>(packed, tokens, fromGather, batch, sequence, kept, dim, accumulate: true);
        Assert.AreEqual(before[dim] + packed[0] + packed[0], fromGather[dim], 1e-6f, "token 1 of sample 0, twice");
    }

    [TestMethod]
    [DataRow(new[] { 1, 1 }, 1, 1, DisplayName = "a repeated index")]
    [DataRow(new[] { 3, 2 }, 1, 2, DisplayName = "a falling index")]
    [DataRow(new[] { 0, 6 }, 1, 6, DisplayName = "past the sequence")]
    [DataRow(new[] { -1, 2 }, 0, -1, DisplayName = "a negative index")]
    public void KeptRowsThatDoNotRiseStrictlyWithinTheSequenceAreRejected(int[] secondSample, int index, int value)
    {
        const int batch = 2, sequence = 6, kept = 2, dim = 2;
        int[] tokens = [0, 3, .. secondSample];
        var full = new float[batch * sequence * dim];
        var packed = new float[batch * kept * dim];
        string expected = $"kept token indices of sample 1 must rise strictly within [0, {sequence}); index {index} is {value}.";
        foreach (Action kernel in new Action[]
                 {
                     () => TokenDropKernels.Gather<float>(full, tokens, packed, batch, sequence, kept, dim),
                     () => TokenDropKernels.GatherBackward<float>(packed, tokens, full, batch, sequence, kept, dim, accumulate: false),
                 })
        {
            var e = Assert.ThrowsExactly<ArgumentException>(kernel);
            StringAssert.StartsWith(e.Message, expected);
        }
    }

    /// <summary>The loss of <see cref="GradientsMatchFiniteDifferences"/>: Σ w·Scatter(x, Gather(x)²).</summary>
    private static double Loss(double[] x, double[] w, int[] tokens, int batch, int sequence, int kept, int dim)
    {
        var layer = new double[batch * kept * dim];
        TokenDropKernels.Gather<double>(x, tokens, layer, batch, sequence, kept, dim);
        for (int i = 0; i < layer.Length; i++) layer[i] *= layer[i];
        var y = new double[x.Length];
        TokenDropKernels.Scatter<double>(x, layer, tokens, y, batch, sequence, kept, dim);
        double loss = 0;
        for (int i = 0; i < y.Length; i++) loss += w[i] * y[i];
        return loss;
    }

    /// <summary>position[b, t] = j where kept[b, j] = t, else −1: found by scanning, not searching.</summary>
    private static int[,] Positions(int[] tokens, int batch, int sequence, int kept)
    {
        var position = new int[batch, sequence];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < sequence; t++) position[b, t] = -1;
            for (int j = 0; j < kept; j++) position[b, tokens[(b * kept) + j]] = j;
        }

        return position;
    }

    private static string Label(int batch, int sequence, int kept, int dim) =>
        $"batch {batch}, sequence {sequence}, kept {kept}, dim {dim}";
}
