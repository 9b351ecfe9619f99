using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Compression;

namespace Shardwise.Training.Tests;

/// <summary>
/// The vectorised passes of the 1-bit compression against their one-value-at-a-time forms, bit for bit, on random data
/// with the awkward values in it (−0 and NaN count as positive, as in DeepSpeed), at lengths with and without tails; and
/// the sum of squares in its promised order (four sums by i mod 4).
/// </summary>
[TestClass]
public sealed class SignBitsTests
{
    private static float[] Values(int length, int seed)
    {
        var random = new Random(seed);
        var values = Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1) * MathF.Pow(10, random.Next(-3, 3))).ToArray();
        values[0] = -0f;
        values[Math.Min(3, length - 1)] = float.NaN;
        values[length / 2] = 0f;
        return values;
    }

    [TestMethod]
    [DataRow(8)]
    [DataRow(40)]
    [DataRow(1000)]
    public void CompressAccumulateAndExpandEqualTheirScalarForms(int length)
    {
        var x = Values(length, length);
        var (bits, scalarBits) = (new byte[length / 8], new byte[length / 8]);
        var (error, scalarError) = (new float[length], new float[length]);
        SignBits.Compress(x, 0.37f, error, bits);
        SignBits.CompressScalar(x, 0.37f, scalarError, scalarBits);
        CollectionAssert.AreEqual(scalarBits, bits);
        CollectionAssert.AreEqual(scalarError.Select(BitConverter.SingleToInt32Bits).ToArray(), error.Select(BitConverter.SingleToInt32Bits).ToArray());
        Assert.AreEqual(1, bits[0] & 1, "−0 is positive");
        Assert.IsTrue(bits.Any(b => b != 0 && b != 255), "the signs are mixed");

        var (sum, scalarSum) = (Values(length, 7), Values(length, 7));
        SignBits.Accumulate(sum, bits, 0.25f);
        SignBits.AccumulateScalar(scalarSum, bits, 0.25f);
        CollectionAssert.AreEqual(scalarSum.Select(BitConverter.SingleToInt32Bits).ToArray(), sum.Select(BitConverter.SingleToInt32Bits).ToArray());

        int partial = length - 3; // the last server's chunk of a tensor can end inside a byte
        var (expanded, scalarExpanded) = (new float[partial], new float[partial]);
        SignBits.Expand(expanded, bits, 1.5f);
        SignBits.ExpandScalar(scalarExpanded, bits, 1.5f);
        CollectionAssert.AreEqual(scalarExpanded, expanded);
        for (int i = 0; i < partial; i++) Assert.AreEqual(SignBits.Sign(x[i]) * 1.5f, expanded[i], $"element {i}");
    }

    [TestMethod]
    [DataRow(7)]
    [DataRow(64)]
    [DataRow(1003)]
    public void TheSumOfSquaresFollowsItsOrder(int length)
    {
        var x = Values(length, 3).Select(v => float.IsNaN(v) ? 2f : v).ToArray();
        var sums = new double[4];
        int whole = length / 4 * 4;
        for (int i = 0; i < whole; i++) sums[i % 4] += (double)x[i] * x[i];
        double expected = (sums[0] + sums[1]) + (sums[2] + sums[3]);
        for (int i = whole; i < length; i++) expected += (double)x[i] * x[i];
        Assert.AreEqual(expected, SignBits.SumOfSquares(x));
        Assert.AreEqual(expected, SignBits.SumOfSquaresScalar(x));
    }
}
