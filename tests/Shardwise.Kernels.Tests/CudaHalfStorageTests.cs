using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// How a 16-bit CudaOps moves data between the float host side and its 2-byte device elements (category "Gpu"):
/// Load/Store/View round trips are exact for values the storage type represents and round as
/// <see cref="StorageRounding"/> otherwise; fp32 statistics and 16-bit tensors share the activation arena without
/// touching each other.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaHalfStorageTests
{
    private const int Elements = 5000;

    /// <summary>Random values of every magnitude the storage type meets, with its rounding ties and overflow edges.</summary>
    private static float[] Awkward(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            float magnitude = MathF.Pow(2, random.Next(-30, 20)) * (1 + random.NextSingle());
            values[i] = random.Next(2) == 0 ? magnitude : -magnitude;
        }

        float[] edges = [1f + MathF.Pow(2, -11), 1f + 3 * MathF.Pow(2, -11), 1f + MathF.Pow(2, -8), 1f + 3 * MathF.Pow(2, -8),
            65504f, 65519.996f, 65520f, -70000f, MathF.Pow(2, -25), 1.5f * MathF.Pow(2, -25), float.PositiveInfinity];
        edges.CopyTo(values, 0);
        return values;
    }

    private static CudaOps Allocated(StorageType storage)
    {
        CudaOps gpu = GpuSupport.RequireCudaOps(storage: storage);
        gpu.Allocate(Arena.Parameters, Elements);
        gpu.Allocate(Arena.Gradients, Elements);
        gpu.Allocate(Arena.Activations, 4 * Elements);
        gpu.AllocateIndices(16);
        return gpu;
    }

    private static void AssertBitwise(float[] expected, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.AreEqual(BitConverter.SingleToUInt32Bits(expected[i]), BitConverter.SingleToUInt32Bits(actual[i]),
                $"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R}");
        }
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void LoadAndStoreAreExactForRepresentableValuesAndRoundOtherwise(StorageType storage)
    {
        using CudaOps gpu = Allocated(storage);
        Assert.AreEqual(2 * Elements, gpu.ArenaBytes(Arena.Parameters), "2-byte parameters");
        Assert.AreEqual(2 * Elements, gpu.ArenaBytes(Arena.Gradients), "2-byte gradients");
        Assert.AreEqual(2 * 4L * Elements, gpu.ArenaBytes(Arena.Activations), "2-byte activations (the fp32 statistics take two elements each)");

        float[] raw = Awkward(Elements, 1);
        float[] rounded = (float[])raw.Clone();
        StorageRounding.RoundInPlace(rounded, storage);
        Assert.IsTrue(raw.Zip(rounded).Count(p => p.First != p.Second) > Elements / 2, "most raw values are not representable");
        var back = new float[Elements];
        foreach (Arena arena in new[] { Arena.Parameters, Arena.Gradients, Arena.Activations })
        {
            var slice = new Slice(arena, arena == Arena.Activations ? 123 : 0, Elements);
            gpu.Load(rounded, slice);
            gpu.Store(slice, back);
            AssertBitwise(rounded, back, $"{storage} {arena}: representable values round-trip");
            gpu.Load(raw, slice);
            gpu.Store(slice, back);
            AssertBitwise(rounded, back, $"{storage} {arena}: other values round as StorageRounding");
        }

        if (storage == StorageType.Float16)
        {
            gpu.Store(new Slice(Arena.Parameters, 0, 11), back.AsSpan(0, 11));
            Assert.AreEqual(65504f, back[5]);
            Assert.AreEqual(float.PositiveInfinity, back[6], "65520 overflows fp16");
            Assert.AreEqual(float.NegativeInfinity, back[7]);
        }
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void ViewWidensAndItsWritesReachTheDeviceRounded(StorageType storage)
    {
        using CudaOps gpu = Allocated(storage);
        float[] raw = Awkward(Elements, 2);
        float[] rounded = (float[])raw.Clone();
        StorageRounding.RoundInPlace(rounded, storage);

        gpu.Load(raw, new Slice(Arena.Parameters, 0, Elements));
        AssertBitwise(rounded, gpu.View(Arena.Parameters).ToArray(), $"{storage}: View widens what Load stored");

        // A host write through View reaches the device, rounded, before the next operation runs.
        float[] other = Awkward(Elements, 3);
        float[] otherRounded = (float[])other.Clone();
        StorageRounding.RoundInPlace(otherRounded, storage);
        other.CopyTo(gpu.View(Arena.Gradients));
        var x = new Slice(Arena.Activations, 0, 64);
        gpu.Load(new float[64].Select((_, i) => i / 8f).ToArray(), x);
        gpu.Gelu(x, new Slice(Arena.Activations, 64, 64), 64); // any operation uploads the viewed mirror
        var back = new float[Elements];
        gpu.Store(new Slice(Arena.Gradients, 0, Elements), back);
        AssertBitwise(otherRounded, back, $"{storage}: a viewed write arrives rounded");
        AssertBitwise(otherRounded, gpu.View(Arena.Gradients).ToArray(), $"{storage}: and View reads it back");

        // Zeroing the whole arena discards the pending mirror change.
        gpu.View(Arena.Gradients)[5] = 7f;
        gpu.Zero(new Slice(Arena.Gradients, 0, Elements));
        Assert.IsTrue(gpu.View(Arena.Gradients).ToArray().All(v => v == 0f));

        var e = Assert.ThrowsExactly<NotSupportedException>(() => gpu.View(Arena.Activations));
        StringAssert.Contains(e.Message, "Load/Store");
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void Fp32StatisticsAndSixteenBitTensorsShareTheActivationArenaWithoutOverlap(StorageType storage)
    {
        using CudaOps gpu = Allocated(storage);
        // Planner-style neighbours: tensor [0, 100), 30 statistics at two elements each [100, 160), tensor [160, 260).
        Assert.AreEqual(2, gpu.StatisticSlots, "an fp32 statistic spans two 16-bit elements");
        var before = new Slice(Arena.Activations, 0, 100);
        var statistics = new Slice(Arena.Activations, 100, 60);
        var after = new Slice(Arena.Activations, 160, 100);
        float[] a = Awkward(100, 4), b = Awkward(100, 5);
        StorageRounding.RoundInPlace(a, storage);
        StorageRounding.RoundInPlace(b, storage);
        float[] exact = Enumerable.Range(0, 30).Select(i => MathF.PI * (i + 1) / 7f).ToArray(); // not 16-bit representable
        gpu.Load(a, before);
        gpu.Load(b, after);
        gpu.LoadStatistics(exact, statistics);

        var readA = new float[100];
        var readB = new float[100];
        var readStatistics = new float[30];
        gpu.Store(before, readA);
        gpu.Store(after, readB);
        gpu.StoreStatistics(statistics, readStatistics);
        AssertBitwise(a, readA, "tensor before the statistics");
        AssertBitwise(b, readB, "tensor after the statistics");
        AssertBitwise(exact, readStatistics, "statistics keep fp32");

        gpu.Zero(statistics);
        gpu.StoreStatistics(statistics, readStatistics);
        Assert.IsTrue(readStatistics.All(v => v == 0f), "Zero clears statistics");
        gpu.Store(before, readA);
        gpu.Store(after, readB);
        AssertBitwise(a, readA, "tensor before, after zeroing the statistics");
        AssertBitwise(b, readB, "tensor after, after zeroing the statistics");

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => gpu.LoadStatistics(exact, new Slice(Arena.Parameters, 0, 60)));
        StringAssert.Contains(e.Message, "fp32 statistics live in the activation arena");
        Assert.ThrowsExactly<ArgumentException>(() => gpu.LoadStatistics(exact, new Slice(Arena.Activations, 101, 60)),
            "an odd element is not a 4-byte boundary");
        Assert.ThrowsExactly<ArgumentException>(() => gpu.LoadStatistics(exact, new Slice(Arena.Activations, 100, 30)),
            "one element per value is too short");

        // An op given statistics planned at one element per value says why it refuses them.
        var x = new Slice(Arena.Activations, 300, 4 * 8);
        var y = new Slice(Arena.Activations, 340, 4 * 8);
        var gamma = new Slice(Arena.Parameters, 0, 8);
        var tooShort = Assert.ThrowsExactly<ArgumentException>(() =>
            gpu.LayerNorm(x, gamma, gamma, y, new Slice(Arena.Activations, 380, 4), new Slice(Arena.Activations, 390, 8), 4, 8));
        StringAssert.Contains(tooShort.Message, "each takes 2 elements");
    }
}
