using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>Storage types, scheduler orders and tolerances shared by the kernel tests.</summary>
public static class Cases
{
    public static readonly StorageType[] Storages = [StorageType.Float32, StorageType.Float16, StorageType.BFloat16];

    /// <summary>Every storage type with both scheduler orders, for [DynamicData].</summary>
    public static IEnumerable<object[]> StoragesAndOrders()
    {
        foreach (StorageType storage in Storages)
        {
            yield return [storage, SchedulerOrder.Forward];
            yield return [storage, SchedulerOrder.Reversed];
        }
    }

    public static IEnumerable<object[]> Orders()
    {
        yield return [SchedulerOrder.Forward];
        yield return [SchedulerOrder.Reversed];
    }

    /// <summary>The kernel-name suffix of a storage type: f32, f16, bf16.</summary>
    public static string Suffix(this StorageType storage) => storage switch
    {
        StorageType.Float32 => "f32",
        StorageType.Float16 => "f16",
        _ => "bf16",
    };

    /// <summary>
    /// Relative tolerance for one value stored in <paramref name="storage"/> after fp32 arithmetic: a few float32
    /// rounding errors, or one rounding of the output to 16 bits (2^-11 for fp16, 2^-8 for bf16) with a margin.
    /// </summary>
    public static float Tolerance(this StorageType storage) => storage switch
    {
        StorageType.Float32 => 2e-5f,
        StorageType.Float16 => 2e-3f,
        _ => 1.6e-2f,
    };

    /// <summary>
    /// The unit roundoff u of a 16-bit storage type, half the spacing of the values near 1 (2⁻¹¹ fp16, 2⁻⁸ bf16), in
    /// which the 16-bit CudaOps tests state their tolerances; 0 for fp32, whose rounding their fp32 slack covers.
    /// </summary>
    public static float UnitRoundoff(this StorageType storage) => storage switch
    {
        StorageType.Float16 => MathF.Pow(2, -11),
        StorageType.BFloat16 => MathF.Pow(2, -8),
        _ => 0f,
    };

    /// <summary>Rounds values to what the storage type holds (the inputs the reference sees are the stored ones).</summary>
    public static float[] Rounded(this StorageType storage, float[] values)
    {
        var copy = (float[])values.Clone();
        StorageRounding.RoundInPlace(copy, storage);
        return copy;
    }
}

/// <summary>Seeded random inputs that are never zero.</summary>
public sealed class TestData(int seed)
{
    private readonly Random random = new(seed);

    /// <summary>Uniform in ±[0.01·scale, scale].</summary>
    public float[] NonZero(long count, float scale = 1f)
    {
        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            float magnitude = scale * (0.01f + 0.99f * random.NextSingle());
            values[i] = random.Next(2) == 0 ? magnitude : -magnitude;
        }

        return values;
    }

    public int[] Ints(long count, int below)
    {
        var values = new int[count];
        for (long i = 0; i < count; i++) values[i] = random.Next(below);
        return values;
    }

    /// <summary>
    /// Random-LTD's kept token indices <c>[batch, keptCount]</c>: for each sample a random subset of [0, sequence) of
    /// <paramref name="keptCount"/> tokens, in rising order (each sample its own subset).
    /// </summary>
    public int[] KeptTokens(int batch, int sequence, int keptCount)
    {
        var kept = new int[batch * keptCount];
        for (int b = 0; b < batch; b++)
        {
            int[] tokens = Enumerable.Range(0, sequence).ToArray();
            random.Shuffle(tokens);
            Array.Sort(tokens, 0, keptCount);
            tokens.AsSpan(0, keptCount).CopyTo(kept.AsSpan(b * keptCount, keptCount));
        }

        return kept;
    }

    /// <summary>
    /// Cross-entropy targets below <paramref name="below"/> with about one row in four the ignore index (−100):
    /// row 1 always, row 0 never, so every case with two rows or more takes both paths and has a loss to average.
    /// </summary>
    public int[] Targets(long count, int below)
    {
        var values = Ints(count, below);
        for (long i = 1; i < count; i++)
        {
            if (i == 1 || random.Next(4) == 0) values[i] = Shardwise.Cpu.CrossEntropyKernels.IgnoreIndex;
        }

        return values;
    }
}

/// <summary>A CpuOps&lt;float&gt; with a growing activation arena, for running the CPU reference on plain arrays.</summary>
public sealed class CpuReference
{
    private const int IndexCapacity = 1 << 16;
    private long used;
    private long usedIndices;

    public CpuReference()
    {
        Ops.Allocate(Arena.Activations, 1024);
        Ops.AllocateIndices(IndexCapacity);
    }

    public CpuOps<float> Ops { get; } = new();

    public Slice Put(ReadOnlySpan<float> values)
    {
        Slice slice = Reserve(values.Length);
        Ops.Load(values, slice);
        return slice;
    }

    public Slice Zeros(long count) => Reserve(count);

    public IndexSlice PutIndices(ReadOnlySpan<int> values)
    {
        if (usedIndices + values.Length > IndexCapacity) throw new InvalidOperationException("index arena full");
        var slice = new IndexSlice(usedIndices, values.Length);
        usedIndices += values.Length;
        Ops.LoadIndices(values, slice);
        return slice;
    }

    public float[] Read(Slice slice)
    {
        var values = new float[slice.Length];
        Ops.Store(slice, values);
        return values;
    }

    private Slice Reserve(long count)
    {
        Span<float> arena = Ops.View(Arena.Activations);
        if (used + count > arena.Length)
        {
            float[] kept = arena[..(int)used].ToArray();
            Ops.Allocate(Arena.Activations, Math.Max(2 * arena.Length, used + count));
            kept.CopyTo(Ops.View(Arena.Activations));
        }

        var slice = new Slice(Arena.Activations, used, count);
        used += count;
        return slice;
    }
}

public static class Compare
{
    /// <summary>
    /// Asserts |actual − expected| ≤ tolerance · (1 + |expected|) element by element; equal infinities and any two
    /// NaNs match.
    /// </summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float tolerance, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (a == e || (float.IsNaN(e) && float.IsNaN(a))) continue;
            if (!(Math.Abs(a - e) <= tolerance * (1 + Math.Abs(e))))
            {
                Assert.Fail($"{what}: element {i} is {a:R}, expected {e:R} (tolerance {tolerance} relative)");
            }
        }
    }

    public static void Close(float expected, float actual, float tolerance, string what) =>
        Close([expected], [actual], tolerance, what);
}
