using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>embedding_range.cu against CpuOps.EmbeddingRange / EmbeddingRangeBackward (vocabulary-parallel).</summary>
[TestClass]
public sealed class EmbeddingRangeKernelTests
{
    private const int Vocabulary = 13;
    private static readonly int[] RowCounts = [1, 7, 33];
    private static readonly int[] Dims = [5, 64, 130];
    // This rank's rows of the table: the first part, a middle part, the last part.
    private static readonly (int First, int Count)[] Ranges = [(0, 5), (5, 4), (9, 4)];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ForwardCopiesOwnRowsAndZerosTheOthers(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(80);
        foreach ((int first, int count) in Ranges)
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            float[] table = storage.Rounded(data.NonZero((long)count * dim));
            int[] ids = data.Ints(rows, Vocabulary);
            float[] stale = data.NonZero((long)rows * dim); // the kernel must overwrite every element
            var cpu = new CpuReference();
            Slice output = cpu.Put(stale);
            cpu.Ops.EmbeddingRange(cpu.PutIndices(ids), cpu.Put(table), output, rows, dim, first, count);

            using var idBuffer = DeviceBuffer.FromInts(ids);
            using var tableBuffer = DeviceBuffer.From(table, storage);
            using var outputBuffer = DeviceBuffer.From(stale, storage);
            SimtEmulator.Launch($"embedding_range_forward_{storage.Suffix()}", rows, 128, order,
                idBuffer, tableBuffer, outputBuffer, rows, dim, first, count);
            Compare.Close(cpu.Read(output), outputBuffer.ToFloats(), 0f, $"range [{first}, {first + count}), rows {rows}, dim {dim}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BackwardAddsOnlyOwnIdsRows(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(81);
        foreach ((int first, int count) in Ranges)
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            float[] dOutput = storage.Rounded(data.NonZero((long)rows * dim));
            float[] dTable = storage.Rounded(data.NonZero((long)count * dim));
            int[] ids = data.Ints(rows, Vocabulary);
            var cpu = new CpuReference();
            Slice dTableSlice = cpu.Put(dTable);
            cpu.Ops.EmbeddingRangeBackward(cpu.PutIndices(ids), cpu.Put(dOutput), dTableSlice, rows, dim, first, count);

            // The same grouping of all rows as embedding_backward takes; blocks of other ranks' ids do nothing.
            EmbeddingBackwardPlan plan = EmbeddingBackwardPlan.Build(ids);
            using var orderBuffer = DeviceBuffer.FromInts(plan.Order);
            using var starts = DeviceBuffer.FromInts(plan.SegmentStarts);
            using var segmentIds = DeviceBuffer.FromInts(plan.SegmentIds);
            using var dOutputBuffer = DeviceBuffer.From(dOutput, storage);
            using var dTableBuffer = DeviceBuffer.From(dTable, storage);
            SimtEmulator.Launch($"embedding_range_backward_{storage.Suffix()}", plan.Segments, 64, order,
                orderBuffer, starts, segmentIds, plan.Segments, dOutputBuffer, dTableBuffer, dim, first, count);
            Compare.Close(cpu.Read(dTableSlice), dTableBuffer.ToFloats(), storage.Tolerance(),
                $"range [{first}, {first + count}), rows {rows}, dim {dim}");
        }
    }
}
