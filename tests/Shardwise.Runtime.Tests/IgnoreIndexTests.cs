using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// Targets of −100 (PyTorch's ignore_index) against a float64 reference written out here: the loss is the mean over
/// the counted rows only, an ignored row's gradient is zero (overwriting) or untouched (accumulating), and the other
/// rows' gradients are divided by the counted rows, in every cross-entropy op of CpuOps: whole, fused, vocabulary-
/// parallel (one rank holding the whole vocabulary), the row-parallel path and the eager layer.
/// </summary>
[TestClass]
public sealed class IgnoreIndexTests
{
    private const int Vocabulary = 13;
    private const double Scale = 1.75;

    [TestMethod]
    [DataRow(5)]
    [DataRow(300)] // enough rows for CpuOps to split them across cores
    public void EveryOpAveragesOverTheCountedRowsOnly(int rows)
    {
        double[] logits = TestData.Uniform(31, rows * Vocabulary, scale: 3);
        int[] targets = TestData.Ids(32, rows, Vocabulary);
        for (int r = 1; r < rows; r += 3) targets[r] = CrossEntropyKernels.IgnoreIndex;
        int counted = targets.Count(t => t != CrossEntropyKernels.IgnoreIndex);
        Assert.IsTrue(counted > 0 && counted < rows);
        (double expectedLoss, double[] expectedGradient) = Reference(logits, targets, rows, counted);

        var h = new OpHarness<double>(capacity: 1 << 20);
        Slice logitSlice = h.Activation(logits);
        IndexSlice targetSlice = h.Indices(targets);
        double[] previous = TestData.Uniform(33, rows * Vocabulary);

        Assert.AreEqual(expectedLoss, h.Ops.CrossEntropy(logitSlice, targetSlice, rows, Vocabulary), 1e-12, "CrossEntropy");
        Slice gradient = h.Activation(previous);
        h.Ops.CrossEntropyBackward(logitSlice, targetSlice, gradient, rows, Vocabulary, Scale, accumulate: false);
        AssertGradient(expectedGradient, h.Read(gradient), rows, "CrossEntropyBackward");

        Slice fused = h.Activation(previous);
        double fusedLoss = h.Ops.CrossEntropyWithGradient(logitSlice, targetSlice, fused, rows, Vocabulary, Scale, accumulate: true);
        Assert.AreEqual(expectedLoss, fusedLoss, 1e-12, "CrossEntropyWithGradient");
        AssertGradient(TestData.Sum(previous, expectedGradient), h.Read(fused), rows, "CrossEntropyWithGradient, accumulating");

        Slice rowMax = h.Activation(rows), rowSum = h.Activation(rows), targetLogit = h.Activation(rows);
        h.Ops.CrossEntropyRowMax(logitSlice, rowMax, rows, Vocabulary);
        h.Ops.CrossEntropyPartials(logitSlice, targetSlice, rowMax, rowSum, targetLogit, rows, Vocabulary, first: 0);
        Assert.AreEqual(expectedLoss, h.Ops.CrossEntropyFromPartials(rowMax, rowSum, targetLogit, targetSlice, rows), 1e-12, "CrossEntropyFromPartials");
        Slice range = h.Activation(previous);
        h.Ops.CrossEntropyRangeBackward(logitSlice, targetSlice, rowMax, rowSum, range, rows, Vocabulary, 0, Scale, accumulate: false);
        AssertGradient(expectedGradient, h.Read(range), rows, "CrossEntropyRangeBackward");

        Tensor eager = Loss.CrossEntropy(Tensor.FromArray(logits.Select(v => (float)v).ToArray(), rows, Vocabulary), Tensor.Tokens(targets, rows));
        Assert.AreEqual(expectedLoss, eager.Item(), 1e-5, "Loss.CrossEntropy");
    }

    [TestMethod]
    public void ABatchWithEveryTargetIgnoredHasZeroLossAndZeroGradient()
    {
        const int rows = 4;
        var h = new OpHarness<double>();
        Slice logits = h.Activation(TestData.Uniform(41, rows * Vocabulary, scale: 3));
        IndexSlice targets = h.Indices(Enumerable.Repeat(CrossEntropyKernels.IgnoreIndex, rows).ToArray());
        Slice gradient = h.Activation(TestData.Uniform(42, rows * Vocabulary));
        double loss = h.Ops.CrossEntropyWithGradient(logits, targets, gradient, rows, Vocabulary, Scale, accumulate: false);
        Assert.AreEqual(0.0, loss, "not NaN: a micro-batch with nothing to predict adds nothing");
        Assert.IsTrue(h.Read(gradient).All(v => v == 0), "every gradient row cleared");
    }

    [TestMethod]
    public void OtherNegativeTargetsAreStillErrors()
    {
        var h = new OpHarness<double>();
        Slice logits = h.Activation(TestData.Uniform(43, 2 * Vocabulary));
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            h.Ops.CrossEntropy(logits, h.Indices([3, -1]), 2, Vocabulary));
        StringAssert.Contains(e.Message, "Target -1 at row 1 is outside the vocabulary [0, 13) (and is not the ignore index -100)");
    }

    /// <summary>The mean loss over counted rows and Scale · ∂loss/∂logits, straight from the definition.</summary>
    private static (double Loss, double[] Gradient) Reference(double[] logits, int[] targets, int rows, int counted)
    {
        double loss = 0;
        var gradient = new double[logits.Length];
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] == CrossEntropyKernels.IgnoreIndex) continue;
            var row = logits.AsSpan(r * Vocabulary, Vocabulary).ToArray();
            double max = row.Max();
            double sum = row.Sum(x => Math.Exp(x - max));
            loss += max + Math.Log(sum) - row[targets[r]];
            for (int v = 0; v < Vocabulary; v++)
            {
                double probability = Math.Exp(row[v] - max) / sum;
                gradient[r * Vocabulary + v] = Scale * (probability - (v == targets[r] ? 1 : 0)) / counted;
            }
        }

        return (loss / counted, gradient);
    }

    private static void AssertGradient(double[] expected, double[] actual, int rows, string what)
    {
        Assert.IsTrue(TestData.RelativeError(expected, actual) < 1e-12, $"{what}: relative error {TestData.RelativeError(expected, actual):E2}");
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], 1e-12, $"{what}: element {i} (row {i / Vocabulary} of {rows})");
    }
}
