using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// crossentropy_parallel.cu against CpuOps.CrossEntropyRowMax / CrossEntropyPartials / CrossEntropyFromPartials /
/// CrossEntropyRangeBackward, on one rank's share of the vocabulary; and the three steps over two simulated ranks
/// against the whole-vocabulary CpuOps.CrossEntropy / CrossEntropyBackward.
/// </summary>
[TestClass]
public sealed class CrossEntropyParallelKernelTests
{
    private const int Threads = 128;
    private static readonly int[] RowCounts = [1, 7, 33];
    private static readonly int[] Vocabularies = [5, 64, 130, 1003];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void EachStepMatchesCpuOnOneRanksShare(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(90);
        string suffix = storage.Suffix();
        foreach (bool accumulate in new[] { false, true })
        foreach (int rows in RowCounts)
        foreach (int vocabulary in Vocabularies)
        {
            // This rank holds vocabulary entries [first, first + vocabulary) of a 3·vocabulary vocabulary: targets
            // fall inside and outside it.
            int first = vocabulary;
            string at = $"rows {rows}, vocabulary {vocabulary}, accumulate {accumulate}";
            long n = (long)rows * vocabulary;
            float[] logits = storage.Rounded(data.NonZero(n, 6f));
            float[] dLogits = storage.Rounded(data.NonZero(n));
            int[] targets = data.Targets(rows, 3 * vocabulary);
            int divisor = CrossEntropyKernels.MeanDivisor(targets);
            float scale = 2f * rows;

            var cpu = new CpuReference();
            Slice logitSlice = cpu.Put(logits), dLogitSlice = cpu.Put(dLogits);
            Slice rowMax = cpu.Zeros(rows), rowSum = cpu.Zeros(rows), targetLogit = cpu.Zeros(rows);
            IndexSlice targetSlice = cpu.PutIndices(targets);
            cpu.Ops.CrossEntropyRowMax(logitSlice, rowMax, rows, vocabulary);
            cpu.Ops.CrossEntropyPartials(logitSlice, targetSlice, rowMax, rowSum, targetLogit, rows, vocabulary, first);
            float loss = cpu.Ops.CrossEntropyFromPartials(rowMax, rowSum, targetLogit, targetSlice, rows);
            cpu.Ops.CrossEntropyRangeBackward(logitSlice, targetSlice, rowMax, rowSum, dLogitSlice, rows, vocabulary,
                first, scale, accumulate);

            using var logitBuffer = DeviceBuffer.From(logits, storage);
            using var targetBuffer = DeviceBuffer.FromInts(targets);
            using var dLogitBuffer = DeviceBuffer.From(dLogits, storage);
            using var maxBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            using var sumBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            using var targetLogitBuffer = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            using var lossBuffer = DeviceBuffer.Zeroed(1, StorageType.Float32);
            SimtEmulator.Launch($"crossentropy_row_max_{suffix}", rows, Threads, order, logitBuffer, maxBuffer, rows, vocabulary);
            SimtEmulator.Launch($"crossentropy_partials_{suffix}", rows, Threads, order, logitBuffer, targetBuffer,
                maxBuffer, sumBuffer, targetLogitBuffer, rows, vocabulary, first);
            SimtEmulator.Launch("crossentropy_loss_from_partials_f32", 1, 256, order, maxBuffer, sumBuffer,
                targetLogitBuffer, targetBuffer, rows, 1f / divisor, lossBuffer);
            SimtEmulator.Launch($"crossentropy_range_backward_{suffix}", rows, Threads, order, logitBuffer, targetBuffer,
                maxBuffer, sumBuffer, dLogitBuffer, rows, vocabulary, first, scale / divisor, accumulate ? 1 : 0);

            Compare.Close(cpu.Read(rowMax), maxBuffer.ToFloats(), 0f, $"row max, {at}");
            Compare.Close(cpu.Read(rowSum), sumBuffer.ToFloats(), 1e-5f, $"row sum, {at}");
            Compare.Close(cpu.Read(targetLogit), targetLogitBuffer.ToFloats(), 0f, $"target logit, {at}");
            Compare.Close(loss, lossBuffer.ToFloats()[0], 1e-5f, $"loss, {at}");
            Compare.Close(cpu.Read(dLogitSlice), dLogitBuffer.ToFloats(), storage.Tolerance(), $"dlogits, {at}");
            if (accumulate) continue;

            // Overwriting, the gradient may take the logits' own buffer (the generator plans it so): bit for bit the
            // separate buffer's.
            SimtEmulator.Launch($"crossentropy_range_backward_{suffix}", rows, Threads, order, logitBuffer, targetBuffer,
                maxBuffer, sumBuffer, logitBuffer, rows, vocabulary, first, scale / divisor, 0);
            CollectionAssert.AreEqual(dLogitBuffer.ToFloats(), logitBuffer.ToFloats(), $"dlogits over the logits, {at}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void TwoRanksTogetherGiveTheWholeVocabularyLoss(SchedulerOrder order)
    {
        const int rows = 9, vocabulary = 130, half = vocabulary / 2;
        var data = new TestData(91);
        float[] logits = data.NonZero(rows * vocabulary, 6f);
        int[] targets = data.Targets(rows, vocabulary);
        int divisor = CrossEntropyKernels.MeanDivisor(targets);
        var cpu = new CpuReference();
        Slice whole = cpu.Put(logits), dWhole = cpu.Zeros(rows * vocabulary);
        IndexSlice targetSlice = cpu.PutIndices(targets);
        float expectedLoss = cpu.Ops.CrossEntropy(whole, targetSlice, rows, vocabulary);
        cpu.Ops.CrossEntropyBackward(whole, targetSlice, dWhole, rows, vocabulary, 1f, accumulate: false);
        float[] expectedGradient = cpu.Read(dWhole);

        // Rank r holds columns [r·half, (r+1)·half) of every row.
        var shares = new DeviceBuffer[2];
        var maxima = new DeviceBuffer[2];
        var sums = new DeviceBuffer[2];
        var targetLogits = new DeviceBuffer[2];
        using var targetBuffer = DeviceBuffer.FromInts(targets);
        for (int r = 0; r < 2; r++)
        {
            var share = new float[rows * half];
            for (int i = 0; i < rows; i++) Array.Copy(logits, i * vocabulary + r * half, share, i * half, half);
            shares[r] = DeviceBuffer.From(share, StorageType.Float32);
            maxima[r] = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            sums[r] = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            targetLogits[r] = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            SimtEmulator.Launch("crossentropy_row_max_f32", rows, Threads, order, shares[r], maxima[r], rows, half);
        }

        float[] globalMax = Combine(maxima, MathF.Max);
        for (int r = 0; r < 2; r++)
        {
            maxima[r].Write(globalMax);
            SimtEmulator.Launch("crossentropy_partials_f32", rows, Threads, order, shares[r], targetBuffer, maxima[r],
                sums[r], targetLogits[r], rows, half, r * half);
        }

        float[] globalSum = Combine(sums, (a, b) => a + b), globalTarget = Combine(targetLogits, (a, b) => a + b);
        using var loss = DeviceBuffer.Zeroed(1, StorageType.Float32);
        sums[0].Write(globalSum);
        targetLogits[0].Write(globalTarget);
        SimtEmulator.Launch("crossentropy_loss_from_partials_f32", 1, 64, order, maxima[0], sums[0], targetLogits[0], targetBuffer, rows, 1f / divisor, loss);
        Compare.Close(expectedLoss, loss.ToFloats()[0], 1e-5f, "loss over two ranks");

        for (int r = 0; r < 2; r++)
        {
            using var gradient = DeviceBuffer.Zeroed(rows * half, StorageType.Float32);
            SimtEmulator.Launch("crossentropy_range_backward_f32", rows, 64, order, shares[r], targetBuffer, maxima[0],
                sums[0], gradient, rows, half, r * half, 1f / divisor, 0);
            float[] got = gradient.ToFloats();
            var expected = new float[rows * half];
            for (int i = 0; i < rows; i++) Array.Copy(expectedGradient, i * vocabulary + r * half, expected, i * half, half);
            Compare.Close(expected, got, 1e-5f, $"dlogits of rank {r}");
        }

        foreach (var buffer in new[] { shares, maxima, sums, targetLogits })
        foreach (DeviceBuffer b in buffer) b.Dispose();
    }

    private static float[] Combine(DeviceBuffer[] perRank, Func<float, float, float> reduce)
    {
        float[] result = perRank[0].ToFloats(), other = perRank[1].ToFloats();
        for (int i = 0; i < result.Length; i++) result[i] = reduce(result[i], other[i]);
        return result;
    }
}
