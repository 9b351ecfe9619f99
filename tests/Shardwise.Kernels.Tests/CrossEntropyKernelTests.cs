using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// crossentropy.cu (and sum_f32 for the mean) against CpuOps.CrossEntropy / CrossEntropyBackward: the forward's
/// losses, and the backward both with the forward's row statistics (one read of the logits) and computing its own
/// (two reads), which must agree bit for bit, as must the fused forward-and-backward kernel. Shapes cover vocabularies that are not multiples of the 16-byte vector
/// or of the block, rows that start off a 16-byte boundary (logits and dlogits each at their own element offset, so
/// the stores are sometimes vector and sometimes single), and GPT-2's 50304-entry vocabulary.
/// </summary>
[TestClass]
public sealed class CrossEntropyKernelTests
{
    private static readonly int[] RowCounts = [1, 7, 33];
    private static readonly int[] Vocabularies = [5, 64, 130, 1003];

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void LossAndGradientMatchCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(40);
        foreach (bool accumulate in new[] { false, true })
        foreach (int rows in RowCounts)
        foreach (int vocabulary in Vocabularies)
            Check(data, storage, order, rows, vocabulary, threads: 128, 0, 0, accumulate);
    }

    /// <summary>
    /// Rows off the 16-byte boundary: every element offset of the logits (0 … 7 for 16-bit storage), with dlogits at
    /// the same offset (vector stores) or another (single-element stores); a vocabulary of 37 makes every row start
    /// at a different alignment, and 5000 with 64 threads needs several rounds of SW_CE_VECTORS vectors per thread.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void MisalignedRowsMatchCpu(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(43);
        int perVector = 16 / storage.BytesPerElement();
        for (int logitOffset = 0; logitOffset < perVector; logitOffset++)
        foreach (int dLogitOffset in new[] { logitOffset, (logitOffset + 3) % perVector })
        {
            Check(data, storage, order, rows: 5, vocabulary: 37, threads: 64, logitOffset, dLogitOffset, accumulate: logitOffset % 2 == 1);
            Check(data, storage, order, rows: 3, vocabulary: 5000, threads: 64, logitOffset, dLogitOffset, accumulate: logitOffset % 2 == 0);
        }
    }

    /// <summary>GPT-2's padded vocabulary (a multiple of 8) and one that is not, with few rows and the block CudaOps uses.</summary>
    [TestMethod]
    [DynamicData(nameof(Cases.Orders), typeof(Cases))]
    public void LargeVocabulariesWithFewRowsMatchCpu(SchedulerOrder order)
    {
        var data = new TestData(44);
        foreach (StorageType storage in Cases.Storages)
        {
            Check(data, storage, order, rows: 2, vocabulary: 50304, threads: 512, 0, 0, accumulate: false);
            Check(data, storage, order, rows: 3, vocabulary: 50311, threads: 512, 1, 1, accumulate: true);
        }
    }

    /// <summary>
    /// One comparison: the forward's mean loss and row statistics, and the backward with and without them, against
    /// the CPU backend; logits and dlogits lie <paramref name="logitOffset"/> and <paramref name="dLogitOffset"/>
    /// elements into their buffers (malloc'd, so 16-byte aligned).
    /// </summary>
    private static void Check(TestData data, StorageType storage, SchedulerOrder order, int rows, int vocabulary, int threads,
        int logitOffset, int dLogitOffset, bool accumulate)
    {
        string at = $"{storage}, rows {rows}, vocabulary {vocabulary}, offsets {logitOffset}/{dLogitOffset}, accumulate {accumulate}";
        string suffix = storage.Suffix();
        int n = rows * vocabulary;
        float[] logits = storage.Rounded(data.NonZero(n, 6f));
        float[] dLogits = storage.Rounded(data.NonZero(n));
        int[] targets = data.Targets(rows, vocabulary);
        int divisor = CrossEntropyKernels.MeanDivisor(targets);
        // dloss = vocabulary, so that the typical gradient dloss · softmax is O(1) even for 50K entries, and a
        // tolerance relative to 1 + |value| still measures it.
        float scale = (float)vocabulary * divisor;

        var cpu = new CpuReference();
        Slice logitSlice = cpu.Put(logits), dLogitSlice = cpu.Put(dLogits);
        IndexSlice targetSlice = cpu.PutIndices(targets);
        float loss = cpu.Ops.CrossEntropy(logitSlice, targetSlice, rows, vocabulary);
        cpu.Ops.CrossEntropyBackward(logitSlice, targetSlice, dLogitSlice, rows, vocabulary, scale, accumulate);
        float[] expected = cpu.Read(dLogitSlice);

        using var logitBuffer = Padded(logits, logitOffset, storage);
        using var targetBuffer = DeviceBuffer.FromInts(targets);
        using var withStatistics = Padded(dLogits, dLogitOffset, storage);
        using var withoutStatistics = Padded(dLogits, dLogitOffset, storage);
        using var losses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        using var statistics = DeviceBuffer.Zeroed(2 * rows, StorageType.Float32);
        using var mean = DeviceBuffer.Zeroed(1, StorageType.Float32);
        nint l = At(logitBuffer, logitOffset);
        SimtEmulator.Launch($"crossentropy_forward_{suffix}", rows, threads, order, l, targetBuffer, losses, statistics,
            rows, vocabulary);
        SimtEmulator.Launch("sum_f32", 1, 256, order, losses, rows, mean, 1f / divisor);
        SimtEmulator.Launch($"crossentropy_backward_{suffix}", rows, threads, order, l, targetBuffer, statistics,
            At(withStatistics, dLogitOffset), rows, vocabulary, scale / divisor, accumulate ? 1 : 0);
        SimtEmulator.Launch($"crossentropy_backward_{suffix}", rows, threads, order, l, targetBuffer, KernelArg.Null,
            At(withoutStatistics, dLogitOffset), rows, vocabulary, scale / divisor, accumulate ? 1 : 0);

        Compare.Close(loss, mean.ToFloats()[0], 1e-5f, $"mean loss, {at}");
        float[] s = statistics.ToFloats();
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] == CrossEntropyKernels.IgnoreIndex)
            {
                Assert.AreEqual(0f, losses.ToFloats()[r], $"row {r} is ignored: no loss, {at}");
                continue; // and no statistics: its logits are never read
            }

            float max = float.NegativeInfinity;
            for (int j = 0; j < vocabulary; j++) max = Math.Max(max, logits[r * vocabulary + j]);
            Assert.AreEqual(max, s[2 * r], $"row {r} max, {at}");
            double sum = 0;
            for (int j = 0; j < vocabulary; j++) sum += Math.Exp(logits[r * vocabulary + j] - max);
            Compare.Close((float)sum, s[2 * r + 1], 1e-5f, $"row {r} Σ exp, {at}");
        }

        float[] gradient = Unpadded(withStatistics, dLogitOffset, n);
        Compare.Close(expected, gradient, storage.Tolerance(), $"dlogits, {at}");
        CollectionAssert.AreEqual(gradient, Unpadded(withoutStatistics, dLogitOffset, n),
            $"dlogits with the forward's statistics and without, {at}");
        CollectionAssert.AreEqual(logits, Unpadded(logitBuffer, logitOffset, n), $"logits unchanged, {at}");
        AssertPaddingKept(withStatistics, dLogitOffset, n, at);
        AssertPaddingKept(withoutStatistics, dLogitOffset, n, at);

        // The fused kernel, its second pass reading the row from shared memory (staged) or again from global memory:
        // the forward's losses and the backward's dlogits, bit for bit, in one launch.
        foreach (bool staged in new[] { true, false })
        {
            using var fused = Padded(dLogits, dLogitOffset, storage);
            using var fusedLosses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            LaunchFused(suffix, rows, threads, order, staged, vocabulary, storage, l, targetBuffer, fusedLosses,
                At(fused, dLogitOffset), scale / divisor, accumulate);
            string fusedAt = $"{at}, staged {staged}";
            CollectionAssert.AreEqual(losses.ToFloats(), fusedLosses.ToFloats(), $"fused losses, {fusedAt}");
            CollectionAssert.AreEqual(gradient, Unpadded(fused, dLogitOffset, n), $"fused dlogits, {fusedAt}");
            AssertPaddingKept(fused, dLogitOffset, n, fusedAt);
            CollectionAssert.AreEqual(logits, Unpadded(logitBuffer, logitOffset, n), $"logits unchanged by the fused kernel, {fusedAt}");
        }
    }

    /// <summary>
    /// crossentropy_forward_backward, with (staged) the dynamic shared memory CudaOps gives it for one row at the
    /// row's alignment: vocabulary elements and 16 bytes.
    /// </summary>
    private static void LaunchFused(string suffix, int rows, int threads, SchedulerOrder order, bool staged, int vocabulary,
        StorageType storage, KernelArg logits, KernelArg targets, KernelArg losses, KernelArg dLogits, float dloss, bool accumulate)
    {
        ulong shared = staged ? (ulong)(vocabulary * storage.BytesPerElement() + 16) : 0;
        SimtEmulator.Launch($"crossentropy_forward_backward_{suffix}", rows, threads, shared, order, logits, targets, losses,
            dLogits, rows, vocabulary, dloss, accumulate ? 1 : 0, staged ? 1 : 0);
    }

    /// <summary>
    /// dlogits over the logits themselves (accumulate off), as llm.c does: the same values as into a separate buffer,
    /// with and without the forward's statistics, aligned and misaligned.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void GradientOverwritesTheLogitsInPlace(StorageType storage, SchedulerOrder order)
    {
        const int rows = 7;
        var data = new TestData(41);
        string suffix = storage.Suffix();
        foreach ((int vocabulary, int offset) in new[] { (130, 0), (131, 3), (2000, 1) })
        {
            int n = rows * vocabulary;
            float[] logits = storage.Rounded(data.NonZero(n, 6f));
            int[] targets = data.Targets(rows, vocabulary);
            float dloss = 1f / CrossEntropyKernels.MeanDivisor(targets);
            using var targetBuffer = DeviceBuffer.FromInts(targets);
            using var logitBuffer = Padded(logits, offset, storage);
            using var separate = Padded(new float[n], offset, storage);
            using var losses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
            using var statistics = DeviceBuffer.Zeroed(2 * rows, StorageType.Float32);
            nint l = At(logitBuffer, offset);
            SimtEmulator.Launch($"crossentropy_forward_{suffix}", rows, 64, order, l, targetBuffer, losses, statistics,
                rows, vocabulary);
            SimtEmulator.Launch($"crossentropy_backward_{suffix}", rows, 64, order, l, targetBuffer, statistics,
                At(separate, offset), rows, vocabulary, dloss, 0);
            float[] expected = Unpadded(separate, offset, n);
            foreach (bool useStatistics in new[] { true, false })
            {
                using var inPlace = Padded(logits, offset, storage);
                nint p = At(inPlace, offset);
                SimtEmulator.Launch($"crossentropy_backward_{suffix}", rows, 64, order, p, targetBuffer,
                    useStatistics ? statistics : KernelArg.Null, p, rows, vocabulary, dloss, 0);
                CollectionAssert.AreEqual(expected, Unpadded(inPlace, offset, n),
                    $"vocabulary {vocabulary}, offset {offset}, statistics {useStatistics}");
            }

            foreach (bool staged in new[] { true, false })
            {
                using var fusedInPlace = Padded(logits, offset, storage);
                using var fusedLosses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
                nint f = At(fusedInPlace, offset);
                LaunchFused(suffix, rows, 64, order, staged, vocabulary, storage, f, targetBuffer, fusedLosses, f, dloss, false);
                string at = $"fused, vocabulary {vocabulary}, offset {offset}, staged {staged}";
                CollectionAssert.AreEqual(expected, Unpadded(fusedInPlace, offset, n), at);
                CollectionAssert.AreEqual(losses.ToFloats(), fusedLosses.ToFloats(), $"losses, {at}");
            }
        }
    }

    [TestMethod]
    public void ABadTargetGivesNaNAndLeavesItsRowsGradient()
    {
        const int rows = 3, vocabulary = 64;
        float[] logits = new TestData(42).NonZero(rows * vocabulary);
        float[] dLogits = new TestData(45).NonZero(rows * vocabulary);
        using var logitBuffer = DeviceBuffer.From(logits, StorageType.Float32);
        using var targets = DeviceBuffer.FromInts([3, vocabulary, 0]);
        using var losses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        using var dLogitBuffer = DeviceBuffer.From(dLogits, StorageType.Float32);
        SimtEmulator.Launch("crossentropy_forward_f32", rows, 64, SchedulerOrder.Forward, logitBuffer, targets, losses,
            KernelArg.Null, rows, vocabulary);
        SimtEmulator.Launch("crossentropy_backward_f32", rows, 64, SchedulerOrder.Forward, logitBuffer, targets,
            KernelArg.Null, dLogitBuffer, rows, vocabulary, 1f, 0);
        float[] l = losses.ToFloats(), d = dLogitBuffer.ToFloats();
        Assert.IsTrue(float.IsNaN(l[1]));
        Assert.IsTrue(l[0] > 0 && l[2] > 0);
        CollectionAssert.AreEqual(logits, logitBuffer.ToFloats());
        CollectionAssert.AreEqual(dLogits.AsSpan(vocabulary, vocabulary).ToArray(), d.AsSpan(vocabulary, vocabulary).ToArray(),
            "the bad row's dlogits are left");
        Assert.AreNotEqual(dLogits[0], d[0], "the good rows' dlogits are written");

        using var fusedLosses = DeviceBuffer.Zeroed(rows, StorageType.Float32);
        using var fusedDLogits = DeviceBuffer.From(dLogits, StorageType.Float32);
        LaunchFused("f32", rows, 64, SchedulerOrder.Forward, true, vocabulary, StorageType.Float32, logitBuffer, targets,
            fusedLosses, fusedDLogits, 1f, false);
        CollectionAssert.AreEqual(l, fusedLosses.ToFloats(), "the fused kernel's losses, NaN for the bad row");
        CollectionAssert.AreEqual(d, fusedDLogits.ToFloats(), "the fused kernel leaves the bad row's dlogits too");
    }

    /// <summary>A buffer holding <paramref name="values"/> from element <paramref name="offset"/> on, with room after.</summary>
    private static DeviceBuffer Padded(float[] values, int offset, StorageType storage)
    {
        var padded = new float[values.Length + 8];
        padded.AsSpan().Fill(Padding);  // a large logit: read into a row's max it would change every result
        values.CopyTo(padded, offset);
        return DeviceBuffer.From(padded, storage);
    }

    private const float Padding = 1000f;

    /// <summary>Asserts that nothing was written outside the buffer's values.</summary>
    private static void AssertPaddingKept(DeviceBuffer buffer, int offset, int count, string what)
    {
        float[] all = buffer.ToFloats();
        for (int i = 0; i < all.Length; i++)
            if (i < offset || i >= offset + count) Assert.AreEqual(Padding, all[i], $"element {i} outside the values, {what}");
    }

    private static nint At(DeviceBuffer buffer, int offset) => buffer.Pointer + offset * buffer.ElementBytes;

    private static float[] Unpadded(DeviceBuffer buffer, int offset, int count) => buffer.ToFloats().AsSpan(offset, count).ToArray();
}
