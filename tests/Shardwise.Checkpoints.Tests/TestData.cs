using System;

namespace Shardwise.Checkpoints.Tests;

/// <summary>Random tensor contents with no zeros, so a read that returns an unwritten (zero) region is caught.</summary>
internal static class TestData
{
    public static float[] Floats(Random random, int length, double min = 0.01, double max = 4.0)
    {
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = (float)Signed(random, min, max);
        }

        return values;
    }

    public static double[] Doubles(Random random, int length)
    {
        var values = new double[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = Signed(random, 1e-6, 1e6);
        }

        return values;
    }

    public static Half[] Halves(Random random, int length)
    {
        var values = new Half[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = (Half)Signed(random, 0.001, 60000);
        }

        return values;
    }

    /// <summary>bfloat16 bit patterns: the top 16 bits of random non-zero floats.</summary>
    public static ushort[] BFloat16Bits(Random random, int length)
    {
        var values = new ushort[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)Signed(random, 1e-3, 1e3)) >> 16);
        }

        return values;
    }

    public static int[] Ints(Random random, int length)
    {
        var values = new int[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = random.Next(1, int.MaxValue) * (random.Next(2) == 0 ? -1 : 1);
        }

        return values;
    }

    public static long[] Longs(Random random, int length)
    {
        var values = new long[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = random.NextInt64(1, long.MaxValue) * (random.Next(2) == 0 ? -1 : 1);
        }

        return values;
    }

    public static byte[] Bytes(Random random, int length)
    {
        var values = new byte[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = (byte)random.Next(1, 256);
        }

        return values;
    }

    private static double Signed(Random random, double min, double max)
    {
        var magnitude = min + (random.NextDouble() * (max - min));
        return random.Next(2) == 0 ? -magnitude : magnitude;
    }
}
