using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>bias.cu against CpuOps.AddBias / AddBiasBackward (the bias of a Linear layer).</summary>
[TestClass]
public sealed class BiasKernelTests
{
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

    /// <summary>Stage-1 block shapes: CudaOps's (32 column threads × 8 row lanes), and a small odd one.</summary>
    private static readonly Dim3[] PartialBlocks = [new(32, 8), new(4, 3)];

    /// <summary>Dims of the gradient tests: below, at and past a vector's and a block's columns, some multiples of 8.</summary>
    private static readonly int[] BackwardDims = [5, 64, 130, 264];

    /// <summary>Columns per stage-1 thread: one 16-byte vector (SW_BIAS_COLUMNS).</summary>
    private static int Columns(StorageType storage) => 16 / storage.BytesPerElement();

    /// <summary>Both stages, as CudaOps launches them, on dy at any address: dBias += Σ_rows dy.</summary>
    private static void RunBackward(StorageType storage, nint dy, DeviceBuffer dBias, int rows, int dim, int chunks,
        Dim3 block, SchedulerOrder order)
    {
        using var partials = DeviceBuffer.Zeroed((long)chunks * dim, StorageType.Float32);
        string suffix = storage.Suffix();
        var grid = new Dim3((uint)SimtEmulator.Blocks(dim, (int)block.X * Columns(storage)), (uint)chunks);
        SimtEmulator.Launch($"add_bias_backward_partial_{suffix}", grid, block, order, dy, partials, rows, dim);
        SimtEmulator.Launch($"add_bias_backward_reduce_{suffix}", SimtEmulator.Blocks(dim, 32), new Dim3(32, 32), order,
            partials, chunks, dBias, dim);
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AddBiasBackwardAddsTheColumnSums(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(71);
        foreach (int rows in RowCounts)
        foreach (int dim in BackwardDims)
        foreach (int chunks in new[] { 1, 3, 70 })
        foreach (Dim3 block in PartialBlocks)
        {
            float[] dy = storage.Rounded(data.NonZero((long)rows * dim)), dBias = storage.Rounded(data.NonZero(dim));
            var cpu = new CpuReference();
            Slice dBiasSlice = cpu.Put(dBias);
            cpu.Ops.AddBiasBackward(cpu.Put(dy), dBiasSlice, rows, dim);

            using var dyBuffer = DeviceBuffer.From(dy, storage);
            using var dBiasBuffer = DeviceBuffer.From(dBias, storage);
            RunBackward(storage, dyBuffer.Pointer, dBiasBuffer, rows, dim, chunks, block, order);
            // A sum of up to 70 O(1) terms: float32 rounding grows with the row count.
            float tolerance = storage == StorageType.Float32 ? 1e-5f * rows : storage.Tolerance();
            Compare.Close(cpu.Read(dBiasSlice), dBiasBuffer.ToFloats(), tolerance,
                $"rows {rows}, dim {dim}, chunks {chunks}, block {block}");
        }
    }

    /// <summary>
    /// dy one element off a 16-byte boundary takes the element-by-element loads; the sums are bitwise those of the
    /// aligned 16-byte loads (same columns per thread, same order), and both match the CPU.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AddBiasBackwardOfUnalignedRowsEqualsTheAlignedSums(StorageType storage, SchedulerOrder order)
    {
        const int rows = 45, dim = 136, chunks = 2; // dim a multiple of 8: only the address decides the path
        var data = new TestData(73);
        float[] dy = storage.Rounded(data.NonZero((long)rows * dim)), dBias = storage.Rounded(data.NonZero(dim));
        var cpu = new CpuReference();
        Slice dBiasSlice = cpu.Put(dBias);
        cpu.Ops.AddBiasBackward(cpu.Put(dy), dBiasSlice, rows, dim);

        float[] RunAt(int offset)
        {
            using var dyBuffer = DeviceBuffer.From([.. new float[offset], .. dy], storage);
            Assert.AreEqual(0, dyBuffer.Pointer % 16, "the buffers start 16-byte aligned");
            using var dBiasBuffer = DeviceBuffer.From(dBias, storage);
            RunBackward(storage, dyBuffer.Pointer + offset * storage.BytesPerElement(), dBiasBuffer, rows, dim, chunks,
                PartialBlocks[0], order);
            return dBiasBuffer.ToFloats();
        }

        float[] aligned = RunAt(0), unaligned = RunAt(1);
        float tolerance = storage == StorageType.Float32 ? 1e-5f * rows : storage.Tolerance();
        Compare.Close(cpu.Read(dBiasSlice), aligned, tolerance, "aligned");
        CollectionAssert.AreEqual(aligned, unaligned, "unaligned dy: bitwise the aligned sums");
    }

    [TestMethod]
    public void AddBiasBackwardIsTheSameInBothSchedulerOrders()
    {
        const int rows = 70, dim = 132, chunks = 4; // dim a multiple of 4: the 16-byte fp32 loads
        float[] dy = new TestData(72).NonZero(rows * dim);
        float[] RunIn(SchedulerOrder order)
        {
            using var dyBuffer = DeviceBuffer.From(dy, StorageType.Float32);
            using var dBias = DeviceBuffer.Zeroed(dim, StorageType.Float32);
            RunBackward(StorageType.Float32, dyBuffer.Pointer, dBias, rows, dim, chunks, PartialBlocks[0], order);
            return dBias.ToFloats();
        }

        CollectionAssert.AreEqual(RunIn(SchedulerOrder.Forward), RunIn(SchedulerOrder.Reversed), "bitwise deterministic");
    }
}
