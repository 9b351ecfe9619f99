using System;

namespace Shardwise.Distributed.Tests;

/// <summary>Reproducible random inputs: non-zero, fractional, of mixed sign and magnitude, so rounding matters.</summary>
internal static class TestData
{
    public static float[] Floats(int seed, int length)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = NonZero(random);
        return values;
    }

    public static double[] Doubles(int seed, int length)
    {
        var random = new Random(seed);
        var values = new double[length];
        for (int i = 0; i < length; i++) values[i] = NonZero(random);
        return values;
    }

    /// <summary>One input per rank: inputs[rank] has <paramref name="length"/> floats.</summary>
    public static float[][] FloatsPerRank(int seed, int size, int length)
    {
        var inputs = new float[size][];
        for (int rank = 0; rank < size; rank++) inputs[rank] = Floats(seed * 101 + rank, length);
        return inputs;
    }

    public static double[][] DoublesPerRank(int seed, int size, int length)
    {
        var inputs = new double[size][];
        for (int rank = 0; rank < size; rank++) inputs[rank] = Doubles(seed * 101 + rank, length);
        return inputs;
    }

    private static float NonZero(Random random)
    {
        // Magnitudes spread over [1e-3, 1e3) so sums round, and order would change the bits.
        double magnitude = Math.Pow(10, random.NextDouble() * 6 - 3);
        return (float)(random.Next(2) == 0 ? magnitude : -magnitude);
    }
}
