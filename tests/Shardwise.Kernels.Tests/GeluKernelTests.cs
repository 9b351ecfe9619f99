using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>gelu.cu against CpuOps.Gelu / GeluBackward (and the bias add of CpuOps.Linear).</summary>
[TestClass]
public sealed class GeluKernelTests
{
    private static readonly int[] RowCounts = [1, 7, 33];
    private static readonly int[] Dims = [5, 64, 130];
    private static readonly int[] Counts = [1, 5, 64, 1000, 4101];

    // A small grid, so the grid-stride loops wrap: 3 blocks of 64 threads.
    private const int Blocks = 3, Threads = 64;

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BiasGeluForwardMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(20);
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            string at = $"rows {rows}, dim {dim}";
            long n = (long)rows * dim;
            float[] x = storage.Rounded(data.NonZero(n, 3f)), bias = storage.Rounded(data.NonZero(dim));
            var pre = new float[n];
            for (long i = 0; i < n; i++) pre[i] = x[i] + bias[i % dim];
            pre = storage.Rounded(pre);
            var cpu = new CpuReference();
            Slice y = cpu.Zeros(n);
            cpu.Ops.Gelu(cpu.Put(pre), y, n);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var biasBuffer = DeviceBuffer.From(bias, storage);
            using var preBuffer = DeviceBuffer.Zeroed(n, storage);
            using var yBuffer = DeviceBuffer.Zeroed(n, storage);
            SimtEmulator.Launch($"bias_gelu_forward_{storage.Suffix()}", Blocks, Threads, order,
                xBuffer, biasBuffer, preBuffer, yBuffer, (long)rows, dim);
            Compare.Close(pre, preBuffer.ToFloats(), 0f, $"pre-activation, {at}");
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), storage.Tolerance(), $"y, {at}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void GeluWithoutBiasMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(21);
        foreach (int count in Counts)
        {
            float[] x = storage.Rounded(data.NonZero(count, 4f));
            var cpu = new CpuReference();
            Slice y = cpu.Zeros(count);
            cpu.Ops.Gelu(cpu.Put(x), y, count);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var yBuffer = DeviceBuffer.Zeroed(count, storage);
            SimtEmulator.Launch($"bias_gelu_forward_{storage.Suffix()}", Blocks, Threads, order,
                xBuffer, KernelArg.Null, KernelArg.Null, yBuffer, (long)count, 1);
            Compare.Close(cpu.Read(y), yBuffer.ToFloats(), storage.Tolerance(), $"count {count}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BackwardMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(22);
        foreach (bool accumulate in new[] { false, true })
        foreach (int count in Counts)
        {
            float[] x = storage.Rounded(data.NonZero(count, 4f)), dy = storage.Rounded(data.NonZero(count));
            float[] dx = storage.Rounded(data.NonZero(count));
            var cpu = new CpuReference();
            Slice dxSlice = cpu.Put(dx);
            cpu.Ops.GeluBackward(cpu.Put(x), cpu.Put(dy), dxSlice, count, accumulate);

            using var xBuffer = DeviceBuffer.From(x, storage);
            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var dxBuffer = DeviceBuffer.From(dx, storage);
            SimtEmulator.Launch($"gelu_backward_{storage.Suffix()}", Blocks, Threads, order,
                xBuffer, dyBuffer, dxBuffer, (long)count, accumulate ? 1 : 0);
            Compare.Close(cpu.Read(dxSlice), dxBuffer.ToFloats(), storage.Tolerance(),
                $"count {count}, accumulate {accumulate}");
        }
    }
}
