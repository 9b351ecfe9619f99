using System;
using System.Collections.Generic;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>
/// A CpuOps&lt;float&gt; and a CudaOps with identical arenas filled with identical random data: an op runs on both and
/// the slices it wrote are compared. Slices are handed out from the activation arena, whose untouched remainder
/// stays random, so an op that writes outside its slice shows up in <see cref="AssertArenasClose"/>.
/// <para>
/// With a 16-bit CudaOps every value handed to both backends is first rounded to the storage type
/// (<see cref="StorageRounding"/>), so both start from identical inputs and the comparison measures only what the GPU
/// rounds on the way; fp32 per-row statistics (LayerNorm mean/rstd, cross-entropy partials) come from
/// <see cref="Statistics"/> and are compared with <see cref="AssertStatisticsClose"/>.
/// </para>
/// </summary>
public sealed class TwinBackends : IDisposable
{
    private readonly TestData data;
    private readonly List<(Slice Slice, bool Statistics)> handedOut = [];
    private long used, usedIndices;

    public TwinBackends(CudaOps gpu, int seed, long activations = 1 << 20, long indices = 1 << 14, long parameters = 4096)
    {
        Gpu = gpu;
        data = new TestData(seed);
        foreach (ITensorOps<float> ops in Both)
        {
            ops.Allocate(Arena.Parameters, parameters);
            ops.Allocate(Arena.Gradients, parameters);
            ops.Allocate(Arena.Activations, activations);
            ops.AllocateIndices(indices);
        }

        float[] fill = data.NonZero(activations);
        StorageRounding.RoundInPlace(fill, Storage);
        foreach (ITensorOps<float> ops in Both) ops.Load(fill, new Slice(Arena.Activations, 0, activations));
    }

    public StorageType Storage => Gpu.Storage;

    public CpuOps<float> Cpu { get; } = new();

    public CudaOps Gpu { get; }

    public ITensorOps<float>[] Both => [Cpu, Gpu];

    /// <summary>A slice of <paramref name="count"/> random values (±[0.01, 1]·scale), the same on both backends.</summary>
    public Slice Random(long count, float scale = 1f)
    {
        var slice = new Slice(Arena.Activations, used, count);
        used += count;
        handedOut.Add((slice, false));
        float[] values = data.NonZero(count, scale);
        StorageRounding.RoundInPlace(values, Storage);
        foreach (ITensorOps<float> ops in Both) ops.Load(values, slice);
        return slice;
    }

    /// <summary>
    /// Moves the next slice to a multiple of <paramref name="elements"/> elements, plus <paramref name="offset"/>:
    /// aligned slices take the kernels' vector loads (16 bytes = 8 16-bit or 4 fp32 elements), offset ones their
    /// element-by-element paths. The arenas themselves start 256-byte aligned.
    /// </summary>
    public void AlignTo(int elements, int offset = 0) => used = (used + elements - 1) / elements * elements + offset;

    /// <summary>
    /// A slice for <paramref name="count"/> fp32 per-row statistics, filled with the same random fp32 values on both
    /// backends: <see cref="CudaOps.StatisticSlots"/> elements per value from a 4-byte boundary, as the generator
    /// plans them (the CPU backend uses the first <paramref name="count"/>).
    /// </summary>
    public Slice Statistics(long count)
    {
        used = (used + 1) / 2 * 2; // an even element offset is a 4-byte boundary in 16-bit storage
        var slice = new Slice(Arena.Activations, used, count * Gpu.StatisticSlots);
        used += slice.Length;
        handedOut.Add((slice, true));
        float[] values = data.NonZero(count);
        Cpu.Load(values, slice with { Length = count });
        Gpu.LoadStatistics(values, slice);
        return slice;
    }

    /// <summary>Compares an fp32 statistics slice (see <see cref="Statistics"/>).</summary>
    public void AssertStatisticsClose(Slice slice, float tolerance, string what)
    {
        long count = slice.Length / Gpu.StatisticSlots;
        var expected = new float[count];
        var actual = new float[count];
        Cpu.Store(slice with { Length = count }, expected);
        Gpu.StoreStatistics(slice, actual);
        Compare.Close(expected, actual, tolerance, what);
    }

    /// <summary>
    /// Copies the GPU's contents of <paramref name="slice"/> to the CPU, so that the next op reading it starts from the
    /// same (16-bit rounded) values on both and the comparison after it measures that op alone.
    /// </summary>
    public void Sync(Slice slice)
    {
        var values = new float[slice.Length];
        Gpu.Store(slice, values);
        Cpu.Load(values, slice);
    }

    /// <summary>As <see cref="Sync"/>, for an fp32 statistics slice (see <see cref="Statistics"/>).</summary>
    public void SyncStatistics(Slice slice)
    {
        var values = new float[slice.Length / Gpu.StatisticSlots];
        Gpu.StoreStatistics(slice, values);
        Cpu.Load(values, slice with { Length = values.Length });
    }

    /// <summary>A tensor slice's contents on both backends.</summary>
    public (float[] Cpu, float[] Gpu) Read(Slice slice)
    {
        var expected = new float[slice.Length];
        var actual = new float[slice.Length];
        Cpu.Store(slice, expected);
        Gpu.Store(slice, actual);
        return (expected, actual);
    }

    public IndexSlice Indices(int[] values)
    {
        var slice = new IndexSlice(usedIndices, values.Length);
        usedIndices += values.Length;
        foreach (ITensorOps<float> ops in Both) ops.LoadIndices(values, slice);
        return slice;
    }

    public int[] Ints(int count, int below) => data.Ints(count, below);

    /// <summary>Random-LTD's kept token indices (<see cref="TestData.KeptTokens"/>).</summary>
    public int[] KeptTokens(int batch, int sequence, int keptCount) => data.KeptTokens(batch, sequence, keptCount);

    /// <summary>Cross-entropy targets, some of them the ignore index (<see cref="TestData.Targets"/>).</summary>
    public int[] Targets(int count, int below) => data.Targets(count, below);

    /// <summary>Runs <paramref name="op"/> on the CPU, then on the GPU.</summary>
    public void Run(Action<ITensorOps<float>> op)
    {
        op(Cpu);
        op(Gpu);
    }

    public (float Cpu, float Gpu) Run(Func<ITensorOps<float>, float> op) => (op(Cpu), op(Gpu));

    public void AssertClose(Slice slice, float tolerance, string what)
    {
        var expected = new float[slice.Length];
        var actual = new float[slice.Length];
        Cpu.Store(slice, expected);
        Gpu.Store(slice, actual);
        Compare.Close(expected, actual, tolerance, what);
    }

    /// <summary>
    /// Compares the whole activation arena (what the ops wrote, and that nothing else changed). A 16-bit activation
    /// arena has no element-for-element view, so there every slice handed out is compared instead.
    /// </summary>
    public void AssertArenasClose(float tolerance, string what)
    {
        if (Storage != StorageType.Float32)
        {
            foreach ((Slice slice, bool statistics) in handedOut)
            {
                if (statistics) AssertStatisticsClose(slice, tolerance, $"{what} (statistics at {slice.Offset})");
                else AssertClose(slice, tolerance, $"{what} (slice at {slice.Offset})");
            }

            return;
        }

        float[] expected = Cpu.View(Arena.Activations).ToArray();
        float[] actual = Gpu.View(Arena.Activations).ToArray();
        Compare.Close(expected, actual, tolerance, what);
    }

    public void Dispose() => Gpu.Dispose();
}

/// <summary>Relative L2 distance, for whole gradient buffers where single elements may cancel to near zero.</summary>
public static class Norms
{
    public static void RelativeClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        double difference = 0, reference = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            difference += d * d;
            reference += (double)expected[i] * expected[i];
        }

        double relative = Math.Sqrt(difference) / Math.Max(Math.Sqrt(reference), 1e-30);
        Console.WriteLine($"{what}: relative L2 difference {relative:E2}");
        Assert.IsTrue(relative <= tolerance, $"{what}: relative L2 difference {relative:E3} > {tolerance:E1}");
    }
}
