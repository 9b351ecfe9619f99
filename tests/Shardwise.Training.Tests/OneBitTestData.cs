using System;
using System.Linq;

namespace Shardwise.Training.Tests;

/// <summary>
/// The flat buffer the 1-bit tests share: four parameter tensors of 5, 37, 130 and 1 elements (lengths that are not
/// multiples of 8 × ranks, so padding and partial chunks are exercised), and seeded uniform values.
/// </summary>
internal static class OneBitTestData
{
    public const int Length = 173;

    public static readonly Range[] Tensors = [new Range(0, 5), new Range(5, 42), new Range(42, 172), new Range(172, 173)];

    /// <summary>Uniform in [−scale, scale), from <paramref name="seed"/>.</summary>
    public static float[] RandomValues(int length, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1) * scale).ToArray();
    }
}
