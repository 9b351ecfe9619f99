using System.Linq;
using System;
using System.Threading.Tasks;
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
        Slice y = h.Activation(tokens * dim), logSumExp = h.Activation(batch * heads * sequence);

        h.Ops.Attention(qkv, y, logSumExp, batch, sequence, heads, dim);
        h.Ops.AttentionBackward(qkv, y, logSumExp, dy, dqkv, batch, sequence, heads, dim, accumulate: true);

        var serialY = new double[tokens * dim];
        var serialLogSumExp = new double[batch * heads * sequence];
        var serialDqkv = (double[])previous.Clone();
        AttentionKernels.Forward<double>(qkvValues, serialY, serialLogSumExp, new double[sequence * sequence], batch,
            sequence, heads, dim);
        AttentionKernels.Backward<double>(qkvValues, serialLogSumExp, dyValues, serialDqkv,
            new double[2 * sequence * sequence], batch, sequence, heads, dim, accumulate: true);

        AssertClose(serialY, h.Read(y), "y");
        AssertClose(serialLogSumExp, h.Read(logSumExp), "log-sum-exp");
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

    /// <summary>
    /// The generator writes the logits' gradient over the logits (InPlaceGradientPlanner): the overwriting backward
    /// must give bit for bit what it gives into a buffer of its own, on one core (few rows) and split across cores.
    /// </summary>
    [TestMethod]
    [DataRow(3, 11)]
    [DataRow(97, 301)]
    public void CrossEntropyBackwardOverItsOwnLogitsEqualsASeparateBuffer(int rows, int vocabulary)
    {
        var h = new OpHarness<float>(capacity: 8 * rows * vocabulary);
        double[] logitValues = TestData.Uniform(11, rows * vocabulary, scale: 4);
        IndexSlice targets = h.Indices(TestData.Ids(12, rows, vocabulary));
        Slice logits = h.Activation(logitValues), separate = h.Activation(TestData.Uniform(13, rows * vocabulary));
        h.Ops.CrossEntropyBackward(logits, targets, separate, rows, vocabulary, 0.5f, accumulate: false);
        double[] expected = h.Read(separate);

        h.Ops.CrossEntropyBackward(logits, targets, logits, rows, vocabulary, 0.5f, accumulate: false);

        CollectionAssert.AreEqual(expected, h.Read(logits));
        Assert.IsTrue(expected.Any(g => g != 0), "a gradient that is not all zeros");

        // A vocabulary-parallel rank's range gradient, from its row statistics, likewise.
        Slice share = h.Activation(logitValues), rowMax = h.Activation(rows), rowSum = h.Activation(rows);
        Slice targetLogit = h.Activation(rows), rangeSeparate = h.Activation(rows * vocabulary);
        h.Ops.CrossEntropyRowMax(share, rowMax, rows, vocabulary);
        h.Ops.CrossEntropyPartials(share, targets, rowMax, rowSum, targetLogit, rows, vocabulary, first: 0);
        h.Ops.CrossEntropyRangeBackward(share, targets, rowMax, rowSum, rangeSeparate, rows, vocabulary, 0, 0.5f, accumulate: false);
        h.Ops.CrossEntropyRangeBackward(share, targets, rowMax, rowSum, share, rows, vocabulary, 0, 0.5f, accumulate: false);
        CollectionAssert.AreEqual(h.Read(rangeSeparate), h.Read(share));
    }

    [TestMethod]
    public void ExceptionInAChunkReachesTheCallerAndThePoolRunsOn()
    {
        const int rows = 97, vocabulary = 301;
        var h = new OpHarness<double>();
        double[] logitValues = TestData.Uniform(10, rows * vocabulary);
        int[] targetValues = TestData.Ids(11, rows, vocabulary);
        targetValues[rows - 1] = vocabulary; // out of range, in the last chunk
        Slice logits = h.Activation(logitValues);
        IndexSlice targets = h.Indices(targetValues);

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            h.Ops.CrossEntropy(logits, targets, rows, vocabulary));

        targetValues[rows - 1] = 0;
        IndexSlice fixedTargets = h.Indices(targetValues);
        double serialLoss = CrossEntropyKernels.SumOfLosses<double>(logitValues, targetValues, new double[vocabulary],
            rows, vocabulary) / rows;
        Assert.AreEqual(serialLoss, h.Ops.CrossEntropy(logits, fixedTargets, rows, vocabulary), 1e-12 * serialLoss);
    }

    [TestMethod]
    public void InstancesOnSeveralThreadsShareThePoolSafely()
    {
        const int count = 100_003;
        double[] xValues = TestData.Uniform(12, count, scale: 3);
        var serialY = new double[count];
        GeluKernels.Forward<double>(xValues, serialY);

        Parallel.For(0, 4, _ =>
        {
            var h = new OpHarness<double>(capacity: 2 * count);
            Slice x = h.Activation(xValues), y = h.Activation(count);
            for (int run = 0; run < 20; run++)
            {
                h.Ops.Gelu(x, y, count);
                CollectionAssert.AreEqual(serialY, h.Read(y));
            }
        });
    }

    [TestMethod]
    public void ParallelOpsAllocateNothingAfterWarmup()
    {
        const int batch = 4, sequence = 33, heads = 4, dim = 32, rows = 97, vocabulary = 301, count = 100_003;
        int tokens = batch * sequence;
        var h = new OpHarness<double>(capacity: 5 * count);
        Slice qkv = h.Activation(TestData.Uniform(1, tokens * 3 * dim));
        Slice dy = h.Activation(TestData.Uniform(2, tokens * dim));
        Slice dqkv = h.Activation(tokens * 3 * dim), y = h.Activation(tokens * dim);
        Slice logSumExp = h.Activation(batch * heads * sequence);
        Slice logits = h.Activation(TestData.Uniform(3, rows * vocabulary)), dLogits = h.Activation(rows * vocabulary);
        IndexSlice targets = h.Indices(TestData.Ids(4, rows, vocabulary));
        Slice x = h.Activation(TestData.Uniform(5, count)), geluY = h.Activation(count), geluDx = h.Activation(count);

        void RunAll()
        {
            h.Ops.Attention(qkv, y, logSumExp, batch, sequence, heads, dim);
            h.Ops.AttentionBackward(qkv, y, logSumExp, dy, dqkv, batch, sequence, heads, dim, accumulate: false);
            h.Ops.CrossEntropy(logits, targets, rows, vocabulary);
            h.Ops.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, 1.0, accumulate: false);
            h.Ops.Gelu(x, geluY, count);
            h.Ops.GeluBackward(x, geluY, geluDx, count, accumulate: true);
        }

        RunAll();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int run = 0; run < 10; run++) RunAll();
        Assert.AreEqual(0, GC.GetAllocatedBytesForCurrentThread() - before,
            "bytes the calling thread allocated in 10 runs of the parallel ops");
    }

    private static void AssertClose(double[] expected, double[] actual, string what)
    {
        double error = TestData.RelativeError(expected, actual);
        Assert.IsTrue(error < Tolerance, $"{what}: relative error {error:E2}.");
    }
}
