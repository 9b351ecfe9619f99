using System;

namespace Shardwise.Distributed.MpiProbe;

/// <summary>Assertions for the probe: a failure throws, the probe prints it and exits 1, and the test sees it.</summary>
internal static class Check
{
    public static void Equal<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, string what) where T : IEquatable<T>
    {
        if (expected.Length != actual.Length)
            throw new InvalidOperationException($"{what}: expected {expected.Length} elements, got {actual.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            if (!expected[i].Equals(actual[i]))
                throw new InvalidOperationException($"{what}: element {i} is {actual[i]}, expected {expected[i]}");
        }
    }

    public static void Equal(long expected, long actual, string what)
    {
        if (expected != actual) throw new InvalidOperationException($"{what}: {actual}, expected {expected}");
    }
}
