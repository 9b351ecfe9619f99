using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>bias.cu against CpuOps.AddBias / AddBiasBackward (the bias of a Linear layer).</summary>
[TestClass]
public sealed class BiasKernelTests
{
    private const int Threads = 64;
    private static readonly int[] RowCounts = [1, 7, 70];
    private static readonly int[] Dims = [5, 64, 130];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AddBiasMatchesCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(70);
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            float[] y = storage.Rounded(data.NonZero((long)rows * dim)), bias = storage.Rounded(data.NonZero(dim));
            var cpu = new CpuReference();
            Slice ySlice = cpu.Put(y);
            cpu.Ops.AddBias(ySlice, cpu.Put(bias), rows, dim);

            using var yBuffer = DeviceBuffer.From(y, storage);
            using var biasBuffer = DeviceBuffer.From(bias, storage);
            SimtEmulator.Launch($"add_bias_{storage.Suffix()}", 5, 256, order, yBuffer, biasBuffer, (long)rows, dim);
            Compare.Close(cpu.Read(ySlice), yBuffer.ToFloats(), storage.Tolerance(), $"rows {rows}, dim {dim}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AddBiasBackwardAddsTheColumnSums(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(71);
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        foreach (int chunks in new[] { 1, 3, 70 })
        {
            float[] dy = storage.Rounded(data.NonZero((long)rows * dim)), dBias = storage.Rounded(data.NonZero(dim));
            var cpu = new CpuReference();
            Slice dBiasSlice = cpu.Put(dBias);
            cpu.Ops.AddBiasBackward(cpu.Put(dy), dBiasSlice, rows, dim);

            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var partials = DeviceBuffer.Zeroed((long)chunks * dim, StorageType.Float32);
            using var dBiasBuffer = DeviceBuffer.From(dBias, storage);
            string suffix = storage.Suffix();
            SimtEmulator.Launch($"add_bias_backward_partial_{suffix}", new Dim3((uint)SimtEmulator.Blocks(dim, Threads), (uint)chunks),
                Threads, order, dyBuffer, partials, rows, dim);
            SimtEmulator.Launch($"add_bias_backward_reduce_{suffix}", SimtEmulator.Blocks(dim, 32), new Dim3(32, 32), order,
                partials, chunks, dBiasBuffer, dim);
            // A sum of up to 70 O(1) terms: float32 rounding grows with the row count.
            float tolerance = storage == StorageType.Float32 ? 1e-5f * rows : storage.Tolerance();
            Compare.Close(cpu.Read(dBiasSlice), dBiasBuffer.ToFloats(), tolerance,
                $"rows {rows}, dim {dim}, chunks {chunks}");
        }
    }

    [TestMethod]
    public void AddBiasBackwardIsTheSameInBothSchedulerOrders()
    {
        const int rows = 70, dim = 130, chunks = 4;
        float[] dy = new TestData(72).NonZero(rows * dim);
        float[] RunIn(SchedulerOrder order)
        {
            using var dyBuffer = DeviceBuffer.From(dy, StorageType.Float32);
            using var partials = DeviceBuffer.Zeroed(chunks * dim, StorageType.Float32);
            using var dBias = DeviceBuffer.Zeroed(dim, StorageType.Float32);
            SimtEmulator.Launch("add_bias_backward_partial_f32", new Dim3((uint)SimtEmulator.Blocks(dim, Threads), chunks), Threads,
                order, dyBuffer, partials, rows, dim);
            SimtEmulator.Launch("add_bias_backward_reduce_f32", SimtEmulator.Blocks(dim, 32), new Dim3(32, 32), order, partials,
                chunks, dBias, dim);
            return dBias.ToFloats();
        }

        CollectionAssert.AreEqual(RunIn(SchedulerOrder.Forward), RunIn(SchedulerOrder.Reversed), "bitwise deterministic");
    }
}
