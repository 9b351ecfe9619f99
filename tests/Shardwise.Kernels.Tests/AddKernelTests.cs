using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>add.cu against CpuOps.Add / AddBackward.</summary>
[TestClass]
public sealed class AddKernelTests
{
    private const int Threads = 256;
    private static readonly long[] Counts = [1, 255, 257, 4099];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AddMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(60);
        foreach (long n in Counts)
        {
            float[] a = storage.Rounded(data.NonZero(n)), b = storage.Rounded(data.NonZero(n));
            var cpu = new CpuReference();
            Slice y = cpu.Zeros(n);
            cpu.Ops.Add(cpu.Put(a), cpu.Put(b), y, n);

            using var aBuffer = DeviceBuffer.From(a, storage);
            using var bBuffer = DeviceBuffer.From(b, storage);
            using var yBuffer = DeviceBuffer.Zeroed(n, storage);
            // Fewer blocks than elements need, so the grid-stride loop runs more than once.
            SimtEmulator.Launch($"add_{storage.Suffix()}", 3, Threads, order, aBuffer, bBuffer, yBuffer, n);
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), storage.Tolerance(), $"n {n}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AddBackwardCopiesOrAccumulatesLikeCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(61);
        foreach (bool accumulate in new[] { false, true })
        foreach (long n in Counts)
        {
            float[] dy = storage.Rounded(data.NonZero(n)), dx = storage.Rounded(data.NonZero(n));
            var cpu = new CpuReference();
            Slice dxSlice = cpu.Put(dx);
            cpu.Ops.AddBackward(cpu.Put(dy), dxSlice, n, accumulate);

            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var dxBuffer = DeviceBuffer.From(dx, storage);
            SimtEmulator.Launch($"add_backward_{storage.Suffix()}", 2, Threads, order, dyBuffer, dxBuffer, n,
                accumulate ? 1 : 0);
            // A copy is exact in every storage type; a sum rounds once.
            Compare.Close(cpu.Read(dxSlice), dxBuffer.ToFloats(), accumulate ? storage.Tolerance() : 0f,
                $"n {n}, accumulate {accumulate}");
        }
    }

    [TestMethod]
    public void AddWorksInPlace()
    {
        float[] a = new TestData(62).NonZero(300), b = new TestData(63).NonZero(300);
        using var aBuffer = DeviceBuffer.From(a, StorageType.Float32);
        using var bBuffer = DeviceBuffer.From(b, StorageType.Float32);
        SimtEmulator.Launch("add_f32", 1, 64, SchedulerOrder.Forward, aBuffer, bBuffer, aBuffer, 300L);
        float[] sum = aBuffer.ToFloats();
        for (int i = 0; i < a.Length; i++) Assert.AreEqual(a[i] + b[i], sum[i]);
    }
}
