using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// Ops big enough to be split across cores give the same results as the serial kernels: chunks must not share
/// scratch or overlap their writes.
/// </summary>
[TestClass]
public sealed class ParallelPathTests
{
    private const double Tolerance = 1e-13;

    [TestInitialize]
    public void RequireSeveralCores()
    {
        if (Environment.ProcessorCount < 2) Assert.Inconclusive("Needs at least two cores to take the parallel path.");
    }

    [TestMethod]
    public void AttentionMatchesSerialKernel()
    {
        const int batch = 4, sequence = 33, heads = 4, dim = 32;
        int tokens = batch * sequence;
        var h = new OpHarness<double>();
        double[] qkvValues = TestData.Uniform(1, tokens * 3 * dim), dyValues = TestData.Uniform(2, tokens * dim);
        double[] previous = TestData.Uniform(3, tokens * 3 * dim);
        Slice qkv = h.Activation(qkvValues), dy = h.Activation(dyValues), dqkv = h.Activation(previous);
        Slice y = h.Activation(tokens * dim), probabilities = h.Activation(batch * heads * sequence * sequence);

        h.Ops.Attention(qkv, y, probabilities, batch, sequence, heads, dim);
        h.Ops.AttentionBackward(qkv, probabilities, dy, dqkv, batch, sequence, heads, dim, accumulate: true);

        var serialY = new double[tokens * dim];
        var serialProbabilities = new double[batch * heads * sequence * sequence];
        var serialDqkv = (double[])previous.Clone();
        AttentionKernels.Forward<double>(qkvValues, serialY, serialProbabilities, batch, sequence, heads, dim);
        AttentionKernels.Backward<double>(qkvValues, serialProbabilities, dyValues, serialDqkv,
            new double[sequence * sequence], batch, sequence, heads, dim, accumulate: true);

        AssertClose(serialY, h.Read(y), "y");
        AssertClose(serialProbabilities, h.Read(probabilities), "probabilities");
        AssertClose(serialDqkv, h.Read(dqkv), "dqkv");
    }

    [TestMethod]
    public void GeluMatchesSerialKernel()
    {
        const int count = 100_003;
        var h = new OpHarness<double>(capacity: 4 * count);
        double[] xValues = TestData.Uniform(4, count, scale: 3), dyValues = TestData.Uniform(5, count);
        double[] previous = TestData.Uniform(6, count);
        Slice x = h.Activation(xValues), dy = h.Activation(dyValues), dx = h.Activation(previous);
        Slice y = h.Activation(count);

        h.Ops.Gelu(x, y, count);
        h.Ops.GeluBackward(x, dy, dx, count, accumulate: true);

        var serialY = new double[count];
        var serialDx = (double[])previous.Clone();
        GeluKernels.Forward<double>(xValues, serialY);
        GeluKernels.Backward<double>(xValues, dyValues, serialDx, accumulate: true);
        AssertClose(serialY, h.Read(y), "y");
        AssertClose(serialDx, h.Read(dx), "dx");
    }

    [TestMethod]
    public void CrossEntropyMatchesSerialKernel()
    {
        const int rows = 97, vocabulary = 301;
        var h = new OpHarness<double>();
        double[] logitValues = TestData.Uniform(7, rows * vocabulary, scale: 4);
        int[] targetValues = TestData.Ids(8, rows, vocabulary);
        double[] previous = TestData.Uniform(9, rows * vocabulary);
        Slice logits = h.Activation(logitValues), dLogits = h.Activation(previous);
        IndexSlice targets = h.Indices(targetValues);

        double loss = h.Ops.CrossEntropy(logits, targets, rows, vocabulary);
        h.Ops.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, 0.75, accumulate: true);

        var scratch = new double[vocabulary];
        double serialLoss = CrossEntropyKernels.SumOfLosses<double>(logitValues, targetValues, scratch, rows, vocabulary) / rows;
        var serialDLogits = (double[])previous.Clone();
        CrossEntropyKernels.Backward<double>(logitValues, targetValues, serialDLogits, scratch, rows, vocabulary,
            0.75 / rows, accumulate: true);
        Assert.AreEqual(serialLoss, loss, 1e-12 * serialLoss);
        AssertClose(serialDLogits, h.Read(dLogits), "dLogits");
    }

    private static void AssertClose(double[] expected, double[] actual, string what)
    {
        double error = TestData.RelativeError(expected, actual);
        Assert.IsTrue(error < Tolerance, $"{what}: relative error {error:E2}.");
    }
}
