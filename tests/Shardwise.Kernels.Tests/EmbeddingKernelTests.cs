using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>embedding.cu against CpuOps.Embedding / EmbeddingBackward.</summary>
[TestClass]
public sealed class EmbeddingKernelTests
{
    private const int Vocabulary = 11;
    private static readonly int[] RowCounts = [1, 7, 33];
    private static readonly int[] Dims = [5, 64, 130];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void ForwardCopiesTheRowOfEachId(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(1);
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            float[] table = storage.Rounded(data.NonZero(Vocabulary * dim));
            int[] ids = data.Ints(rows, Vocabulary);
            var cpu = new CpuReference();
            Slice output = cpu.Zeros((long)rows * dim);
            cpu.Ops.Embedding(cpu.PutIndices(ids), cpu.Put(table), output, rows, dim);

            using var idBuffer = DeviceBuffer.FromInts(ids);
            using var tableBuffer = DeviceBuffer.From(table, storage);
            using var outputBuffer = DeviceBuffer.Zeroed((long)rows * dim, storage);
            SimtEmulator.Launch($"embedding_forward_{storage.Suffix()}", rows, 128, order,
                idBuffer, tableBuffer, outputBuffer, rows, dim, Vocabulary);
            Compare.Close(cpu.Read(output), outputBuffer.ToFloats(), 0f, $"rows {rows}, dim {dim}");
        }
    }

    [TestMethod]
    public void ForwardWritesZerosForAnIdOutsideTheVocabulary()
    {
        using var ids = DeviceBuffer.FromInts([2, Vocabulary, -1]);
        using var table = DeviceBuffer.From(new TestData(2).NonZero(Vocabulary * 3), StorageType.Float32);
        using var output = DeviceBuffer.From(new float[9] { 9, 9, 9, 9, 9, 9, 9, 9, 9 }, StorageType.Float32);
        SimtEmulator.Launch("embedding_forward_f32", 3, 32, SchedulerOrder.Forward, ids, table, output, 3, 3, Vocabulary);
        float[] o = output.ToFloats();
        CollectionAssert.AreEqual(new float[] { 0, 0, 0, 0, 0, 0 }, o[3..]);
        CollectionAssert.AreEqual(table.ToFloats()[6..9], o[..3]);
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void BackwardAddsEveryRowIntoItsIdsTableRow(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(3);
        foreach (int rows in RowCounts)
        foreach (int dim in Dims)
        {
            float[] dOutput = storage.Rounded(data.NonZero((long)rows * dim));
            float[] dTable = storage.Rounded(data.NonZero(Vocabulary * dim));
            int[] ids = data.Ints(rows, Vocabulary);
            var cpu = new CpuReference();
            Slice dTableSlice = cpu.Put(dTable);
            cpu.Ops.EmbeddingBackward(cpu.PutIndices(ids), cpu.Put(dOutput), dTableSlice, rows, dim);

            EmbeddingBackwardPlan plan = EmbeddingBackwardPlan.Build(ids);
            using var orderBuffer = DeviceBuffer.FromInts(plan.Order);
            using var starts = DeviceBuffer.FromInts(plan.SegmentStarts);
            using var segmentIds = DeviceBuffer.FromInts(plan.SegmentIds);
            using var dOutputBuffer = DeviceBuffer.From(dOutput, storage);
            using var dTableBuffer = DeviceBuffer.From(dTable, storage);
            SimtEmulator.Launch($"embedding_backward_{storage.Suffix()}", plan.Segments, 64, order,
                orderBuffer, starts, segmentIds, plan.Segments, dOutputBuffer, dTableBuffer, dim);
            Compare.Close(cpu.Read(dTableSlice), dTableBuffer.ToFloats(), storage.Tolerance(),
                $"rows {rows}, dim {dim}");
        }
    }

    [TestMethod]
    public void BackwardPlanGroupsRowsByIdInRowOrder()
    {
        EmbeddingBackwardPlan plan = EmbeddingBackwardPlan.Build([4, 1, 4, 0, 1, 4]);
        CollectionAssert.AreEqual(new[] { 3, 1, 4, 0, 2, 5 }, plan.Order);
        CollectionAssert.AreEqual(new[] { 0, 1, 3, 6 }, plan.SegmentStarts);
        CollectionAssert.AreEqual(new[] { 0, 1, 4 }, plan.SegmentIds);
    }
}
