using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>crossentropy.cu (and sum_f32 for the mean) against CpuOps.CrossEntropy / CrossEntropyBackward.</summary>
[TestClass]
public sealed class CrossEntropyKernelTests
{
    private const int Threads = 128;
    private static readonly int[] RowCounts = [1, 7, 33];
    private static readonly int[] Vocabularies = [5, 64, 130, 1000];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void LossAndGradientMatchCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(40);
        foreach (bool accumulate in new[] { false, true })
        foreach (int rows in RowCounts)
        foreach (int vocabulary in Vocabularies)
        {
            string at = $"rows {rows}, vocabulary {vocabulary}, accumulate {accumulate}";
            long n = (long)rows * vocabulary;
            float[] logits = storage.Rounded(data.NonZero(n, 6f));
            float[] dLogits = storage.Rounded(data.NonZero(n));
            int[] targets = data.Ints(rows, vocabulary);
            float scale = 2f * rows;  // so the gradients are O(1): dloss = scale / rows = 2

            var cpu = new CpuReference();
            Slice logitSlice = cpu.Put(logits), dLogitSlice = cpu.Put(dLogits);
            IndexSlice targetSlice = cpu.PutIndices(targets);
            float loss = cpu.Ops.CrossEntropy(logitSlice, targetSlice, rows, vocabulary);
            cpu.Ops.CrossEntropyBackward(logitSlice, targetSlice, dLogitSlice, rows, vocabulary, scale, accumulate);

            using var logitBuffer = DeviceBuffer.From(logits, storage);
            using var targetBuffer = DeviceBuffer.FromInts(targets);
            using var dLogitBuffer = DeviceBuffer.From(dLogits, storage);
            using var losses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            using var mean = DeviceBuffer.Zeroed(1, StorageType.Float32);
            SimtEmulator.Launch($"crossentropy_fused_forward_backward_{storage.Suffix()}", rows, Threads, order,
                logitBuffer, targetBuffer, dLogitBuffer, losses, rows, vocabulary, scale / rows, accumulate ? 1 : 0);
            SimtEmulator.Launch("sum_f32", 1, 256, order, losses, rows, mean, 1f / rows);

            Compare.Close(loss, mean.ToFloats()[0], 1e-5f, $"mean loss, {at}");
            Compare.Close(cpu.Read(dLogitSlice), dLogitBuffer.ToFloats(), storage.Tolerance(), $"dlogits, {at}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void GradientOverwritesTheLogitsInPlace(StorageType storage, SchedulerOrder order)
    {
        const int rows = 7, vocabulary = 130;
        var data = new TestData(41);
        float[] logits = storage.Rounded(data.NonZero(rows * vocabulary, 6f));
        int[] targets = data.Ints(rows, vocabulary);
        using var targetBuffer = DeviceBuffer.FromInts(targets);
        using var logitBuffer = DeviceBuffer.From(logits, storage);
        using var separate = DeviceBuffer.Zeroed(rows * vocabulary, storage);
        using var inPlace = DeviceBuffer.From(logits, storage);
        using var losses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        using var lossesInPlace = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        string kernel = $"crossentropy_fused_forward_backward_{storage.Suffix()}";
        SimtEmulator.Launch(kernel, rows, 64, order, logitBuffer, targetBuffer, separate, losses, rows, vocabulary,
            1f / rows, 0);
        SimtEmulator.Launch(kernel, rows, 64, order, inPlace, targetBuffer, inPlace, lossesInPlace, rows, vocabulary,
            1f / rows, 0);
        CollectionAssert.AreEqual(separate.ToFloats(), inPlace.ToFloats());
        CollectionAssert.AreEqual(losses.ToFloats(), lossesInPlace.ToFloats());
    }

    [TestMethod]
    public void LossOnlyLeavesNoGradientAndABadTargetGivesNaN()
    {
        const int rows = 3, vocabulary = 64;
        float[] logits = new TestData(42).NonZero(rows * vocabulary);
        using var logitBuffer = DeviceBuffer.From(logits, StorageType.Float32);
        using var targets = DeviceBuffer.FromInts([3, vocabulary, 0]);
        using var losses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        SimtEmulator.Launch("crossentropy_fused_forward_backward_f32", rows, 64, SchedulerOrder.Forward, logitBuffer,
            targets, KernelArg.Null, losses, rows, vocabulary, 1f, 0);
        float[] l = losses.ToFloats();
        Assert.IsTrue(float.IsNaN(l[1]));
        Assert.IsTrue(l[0] > 0 && l[2] > 0);
        CollectionAssert.AreEqual(logits, logitBuffer.ToFloats());
    }
}
