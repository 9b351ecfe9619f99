using System;
using System.Numerics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// A CpuOps whose activation-arena slices are handed out one after another with seeded random contents: two built
/// with the same seed hand out the same slices with the same values, so a fused call on one and the unfused sequence
/// on the other can be compared bit for bit.
/// </summary>
internal sealed class SeededCpuOps<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Random random;
    private long used;

    public SeededCpuOps(int seed)
    {
        random = new Random(seed);
        Ops.Allocate(Arena.Activations, 1 << 18);
    }

    public CpuOps<T> Ops { get; } = new();

    /// <summary>Every slice handed out so far, as one.</summary>
    public Slice Everything => new(Arena.Activations, 0, used);

    /// <summary>The next slice of <paramref name="count"/> values, uniform in ±<paramref name="scale"/>.</summary>
    public Slice Random(long count, double scale = 1)
    {
        var slice = new Slice(Arena.Activations, used, count);
        used += count;
        var values = new T[count];
        for (long i = 0; i < count; i++) values[i] = T.CreateChecked((2 * random.NextDouble() - 1) * scale);
        Ops.Load(values, slice);
        return slice;
    }

    public double[] Read(Slice slice)
    {
        var values = new T[slice.Length];
        Ops.Store(slice, values);
        return Array.ConvertAll(values, v => double.CreateChecked(v));
    }

    /// <summary>The same next slice from both (asserted equal), filled alike.</summary>
    public static Slice Both(SeededCpuOps<T> a, SeededCpuOps<T> b, Func<SeededCpuOps<T>, Slice> make)
    {
        Slice slice = make(a);
        Assert.AreEqual(slice, make(b));
        return slice;
    }
}
