using System;

namespace Shardwise.Distributed.MpiProbe;

/// <summary>
/// Each rank's input, reproducible by every other rank from (seed, rank): non-zero multiples of 1/16 in [-64, 64],
/// so every sum over ranks is exact in float whatever order MPI adds in, and results compare with ==.
/// </summary>
internal static class ProbeData
{
    public static float[] Floats(int seed, int rank, int length)
    {
        var random = new Random(seed * 7919 + rank);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = NonZero(random) / 16f;
        return values;
    }

    public static double[] Doubles(int seed, int rank, int length)
    {
        var random = new Random(seed * 7919 + rank);
        var values = new double[length];
        for (int i = 0; i < length; i++) values[i] = NonZero(random) / 16.0;
        return values;
    }

    private static int NonZero(Random random)
    {
        int value = random.Next(1, 1025);
        return random.Next(2) == 0 ? value : -value;
    }
}
