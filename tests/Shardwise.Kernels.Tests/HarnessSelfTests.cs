using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The SIMT emulation itself (tests/kernels-harness): barriers, each warp primitive, dynamic shared memory,
/// multi-dimensional indices, atomics, and the failures it must report — run through its self-test kernels.
/// </summary>
[TestClass]
public sealed class HarnessSelfTests
{
    private static int salt = 1;

    private static int[] Neighbours(int threads, bool synchronise, SchedulerOrder order, out int usedSalt)
    {
        usedSalt = salt += 10_000;
        using var output = DeviceBuffer.ZeroedInts(threads);
        SimtEmulator.Launch("selftest_neighbour", 1, threads, order, output, usedSalt, synchronise ? 1 : 0);
        return output.ToInts();
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void BarrierOrdersSharedMemoryWritesBeforeReads(SchedulerOrder order)
    {
        int[] read = Neighbours(96, synchronise: true, order, out int s);
        for (int t = 0; t < 96; t++) Assert.AreEqual(s + (t + 1) % 96, read[t], $"thread {t}");
    }

    [TestMethod]
    public void AMissingBarrierShowsInOneOfTheOrders()
    {
        bool Correct(SchedulerOrder order)
        {
            int[] read = Neighbours(64, synchronise: false, order, out int s);
            for (int t = 0; t < 64; t++)
            {
                if (read[t] != s + (t + 1) % 64) return false;
            }

            return true;
        }

        Assert.IsFalse(Correct(SchedulerOrder.Forward) && Correct(SchedulerOrder.Reversed));
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void WarpPrimitivesFollowCudaSemantics(SchedulerOrder order)
    {
        const int threads = 64;
        using var output = DeviceBuffer.ZeroedInts(8 * threads);
        SimtEmulator.Launch("selftest_warp_ops", 1, threads, order, output);
        int[] o = output.ToInts();
        for (int t = 0; t < threads; t++)
        {
            int lane = t % 32, warpBase = 100 * (t / 32);
            int Value(int l) => warpBase + l;
            string at = $"thread {t}";
            Assert.AreEqual(Value(lane ^ 5), o[8 * t], $"xor, {at}");
            Assert.AreEqual(Value(lane + 3 < 32 ? lane + 3 : lane), o[8 * t + 1], $"down, {at}");
            Assert.AreEqual(Value(lane >= 2 ? lane - 2 : lane), o[8 * t + 2], $"up, {at}");
            Assert.AreEqual(Value(7), o[8 * t + 3], $"index, {at}");
            Assert.AreEqual(Value(lane % 8 + 3 < 8 ? lane + 3 : lane), o[8 * t + 4], $"down width 8, {at}");
            Assert.AreEqual(unchecked((int)0x49249249u), o[8 * t + 5], $"ballot, {at}");
            Assert.AreEqual(32 * warpBase + 496, o[8 * t + 6], $"warp sum, {at}");
            Assert.AreEqual(1, o[8 * t + 7], $"any/all, {at}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void AHalfWarpMaskSynchronisesOnlyItsLanes(SchedulerOrder order)
    {
        using var output = DeviceBuffer.ZeroedInts(32);
        SimtEmulator.Launch("selftest_partial_mask", 1, 32, order, output);
        int[] o = output.ToInts();
        for (int lane = 0; lane < 32; lane++) Assert.AreEqual(lane < 16 ? lane ^ 1 : -1, o[lane], $"lane {lane}");
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void DynamicSharedMemoryAndBlockSums(SchedulerOrder order)
    {
        const int threads = 64, blocks = 3;
        using var output = DeviceBuffer.Zeroed(threads * blocks, Precision.StorageType.Float32);
        using var sums = DeviceBuffer.Zeroed(2 * blocks, Precision.StorageType.Float32);
        SimtEmulator.Launch("selftest_dynamic_shared", blocks, threads, threads * sizeof(float), order, output, sums);
        float[] o = output.ToFloats(), s = sums.ToFloats();
        for (int i = 0; i < o.Length; i++) Assert.AreEqual(2f * (threads - 1 - i % threads), o[i], $"element {i}");
        for (int b = 0; b < blocks; b++)
        {
            Assert.AreEqual(threads * (threads - 1) / 2f, s[2 * b], $"sum of block {b}");
            Assert.AreEqual(threads, s[2 * b + 1], $"second sum of block {b}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void ThreeDimensionalGridsAndBlocksIndexEveryThreadOnce(SchedulerOrder order)
    {
        var grid = new Dim3(3, 2, 2);
        var block = new Dim3(4, 3, 2);
        int total = 12 * 24;
        using var codes = new LongBuffer(total);
        using var counter = DeviceBuffer.ZeroedInts(1);
        SimtEmulator.Launch("selftest_indices", grid, block, order, codes.Pointer, counter);
        Assert.AreEqual(total, counter.ToInts()[0], "atomicAdd count");
        long[] c = codes.ToArray();
        int i = 0;
        for (int bz = 0; bz < 2; bz++)
        for (int by = 0; by < 2; by++)
        for (int bx = 0; bx < 3; bx++)
        for (int tz = 0; tz < 2; tz++)
        for (int ty = 0; ty < 3; ty++)
        for (int tx = 0; tx < 4; tx++)
        {
            long expected = bx * 100000L + by * 10000L + bz * 1000L + tx * 100L + ty * 10L + tz;
            Assert.AreEqual(expected, c[i++]);
        }
    }

    [TestMethod]
    public void ADeadlockIsReportedNotHung()
    {
        using var output = DeviceBuffer.ZeroedInts(32);
        string? error = SimtEmulator.TryLaunch("selftest_deadlock", 1, 32, 0, SchedulerOrder.Forward, [output]);
        Assert.IsNotNull(error);
        StringAssert.Contains(error, "deadlock");
    }

    [TestMethod]
    public void LaunchesWithWrongArgumentsOrUnknownNamesAreRefused()
    {
        using var output = DeviceBuffer.ZeroedInts(32);
        string? wrongCount = SimtEmulator.TryLaunch("selftest_deadlock", 1, 32, 0, SchedulerOrder.Forward,
            [output, 3]);
        StringAssert.Contains(wrongCount, "do not match");
        string? wrongSize = SimtEmulator.TryLaunch("selftest_neighbour", 1, 32, 0, SchedulerOrder.Forward,
            [output, 1L, 1]);
        StringAssert.Contains(wrongSize, "do not match");
        StringAssert.Contains(SimtEmulator.TryLaunch("no_such_kernel", 1, 32, 0, SchedulerOrder.Forward, []),
            "no kernel named");
        StringAssert.Contains(SimtEmulator.TryLaunch("selftest_deadlock", 1, 1025, 0, SchedulerOrder.Forward,
            [output]), "1024");
    }

    /// <summary>A buffer of 64-bit integers.</summary>
    private sealed unsafe class LongBuffer(int count) : IDisposable
    {
        public nint Pointer { get; } = (nint)System.Runtime.InteropServices.NativeMemory.AllocZeroed((nuint)count * 8);

        public long[] ToArray() => new ReadOnlySpan<long>((void*)Pointer, count).ToArray();

        public void Dispose() => System.Runtime.InteropServices.NativeMemory.Free((void*)Pointer);
    }
}
