using System;
using System.Linq;

namespace Shardwise.Runtime.Tests;

internal static class TestData
{
    /// <summary>
    /// Seeded uniform values in ±scale, rounded to float so that float and double runs see identical inputs,
    /// and kept away from zero so no gradient term can vanish by accident.
    /// </summary>
    public static double[] Uniform(int seed, int count, double scale = 1.0)
    {
        var random = new Random(seed);
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            double magnitude = 0.05 + 0.95 * random.NextDouble();
            values[i] = (float)(scale * (random.Next(2) == 0 ? -magnitude : magnitude));
        }

        return values;
    }

    public static float[] UniformSingle(int seed, int count, double scale = 1.0) =>
        Uniform(seed, count, scale).Select(v => (float)v).ToArray();

    public static int[] Ids(int seed, int count, int vocabulary)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => random.Next(vocabulary)).ToArray();
    }

    /// <summary>‖a − b‖ / max(‖a‖, ‖b‖), zero when both are zero.</summary>
    public static double RelativeError(double[] a, double[] b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"Lengths differ: {a.Length} vs {b.Length}.");
        double difference = 0, normA = 0, normB = 0;
        for (int i = 0; i < a.Length; i++)
        {
            difference += (a[i] - b[i]) * (a[i] - b[i]);
            normA += a[i] * a[i];
            normB += b[i] * b[i];
        }

        double scale = Math.Sqrt(Math.Max(normA, normB));
        return scale == 0 ? 0 : Math.Sqrt(difference) / scale;
    }

    public static double RelativeError(float[] a, float[] b) =>
        RelativeError(a.Select(v => (double)v).ToArray(), b.Select(v => (double)v).ToArray());

    public static double[] Sum(double[] a, double[] b) => a.Zip(b, (x, y) => x + y).ToArray();
}
