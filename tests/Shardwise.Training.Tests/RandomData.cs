using System;

namespace Shardwise.Training.Tests;

internal static class RandomData
{
    /// <summary>Values with magnitude in [min, max) and random sign: never zero, never near zero.</summary>
    public static float[] NonZero(Random random, int length, double min, double max)
    {
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            var magnitude = min + (random.NextDouble() * (max - min));
            values[i] = (float)(random.Next(2) == 0 ? -magnitude : magnitude);
        }

        return values;
    }

    public static double[] ToDouble(float[] values) => Array.ConvertAll(values, v => (double)v);
}
