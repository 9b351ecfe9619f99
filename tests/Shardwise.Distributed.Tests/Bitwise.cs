using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Distributed.Tests;

/// <summary>Exact comparisons: bit patterns, not tolerances, since every rank must hold the very same numbers.</summary>
internal static class Bitwise
{
    public static void AreEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R}");
        }
    }

    public static void AreEqual(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.DoubleToInt64Bits(expected[i]) != BitConverter.DoubleToInt64Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R}");
        }
    }
}
