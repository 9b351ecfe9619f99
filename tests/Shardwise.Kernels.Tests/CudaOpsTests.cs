using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// Every CudaOps operation against CpuOps&lt;float&gt; on random data, at sizes that are not multiples of the block
/// sizes, in fp32 (category "Gpu": inconclusive without a GPU, run by scripts/gpu-suite.sh).
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaOpsTests
{
    /// <summary>Elementwise ops: a few fp32 roundings.</summary>
    private const float Elementwise = 2e-5f;

    /// <summary>Reductions and GEMMs: the same sums in another order (fp32, up to a few hundred terms).</summary>
    private const float Summed = 1e-4f;

    private static TwinBackends Twins(int seed, long activations = 1 << 20) =>
        new(GpuSupport.RequireCudaOps(), seed, activations);

    [TestMethod]
    public void LoadStoreZeroAndViewMoveTheRightData()
    {
        using TwinBackends twins = Twins(1);
        CudaOps gpu = twins.Gpu;
        Slice slice = twins.Random(1000);
        twins.Run(ops => ops.Zero(slice with { Offset = slice.Offset + 10, Length = 17 }));
        twins.AssertArenasClose(0f, "after Zero");

        // A write through View reaches the device before the next operation.
        foreach (ITensorOps<float> ops in twins.Both) ops.View(Arena.Activations)[(int)slice.Offset + 3] = 42f;
        Slice copy = twins.Random(1000);
        twins.Run(ops => ops.AddBackward(slice, copy, 1000, accumulate: false));
        var back = new float[1000];
        gpu.Store(copy, back);
        Assert.AreEqual(42f, back[3]);
        twins.AssertArenasClose(0f, "after a viewed write and a copy");

        // View reads what the device computed.
        Assert.AreEqual(42f, gpu.View(Arena.Activations)[(int)copy.Offset + 3]);

        // Zeroing a whole arena discards un-uploaded mirror changes.
        gpu.View(Arena.Gradients)[5] = 7f;
        gpu.Zero(new Slice(Arena.Gradients, 0, 4096));
        Assert.IsTrue(gpu.View(Arena.Gradients).ToArray().All(v => v == 0f));
    }

    [TestMethod]
    public void PositionsEmbeddingAndItsGradient()
    {
        using TwinBackends twins = Twins(2);
        foreach ((int rows, int dim) in new[] { (1, 5), (37, 130), (300, 64) })
        {
            const int vocabulary = 11;
            Slice table = twins.Random(vocabulary * dim), output = twins.Random((long)rows * dim);
            IndexSlice ids = twins.Indices(twins.Ints(rows, vocabulary));
            twins.Run(ops => ops.Embedding(ids, table, output, rows, dim));
            twins.AssertClose(output, 0f, $"embedding rows {rows} dim {dim}");

            Slice dOutput = twins.Random((long)rows * dim), dTable = twins.Random(vocabulary * dim);
            twins.Run(ops => ops.EmbeddingBackward(ids, dOutput, dTable, rows, dim));
            twins.AssertClose(dTable, Elementwise * 10, $"embedding backward rows {rows} dim {dim}");

            int batch = 3, sequence = Math.Max(1, rows / 3);
            IndexSlice positions = twins.Indices(new int[batch * sequence]);
            Slice positionTable = twins.Random((long)sequence * dim), looked = twins.Random((long)batch * sequence * dim);
            twins.Run(ops =>
            {
                ops.Positions(positions, batch, sequence);
                ops.Embedding(positions, positionTable, looked, batch * sequence, dim);
            });
            twins.AssertClose(looked, 0f, $"positions batch {batch} sequence {sequence}");
        }

        twins.AssertArenasClose(Elementwise * 10, "nothing else changed");
    }

    [TestMethod]
    public void AnIdOutsideTheTableIsRejectedAsOnTheCpu()
    {
        using TwinBackends twins = Twins(3);
        Slice table = twins.Random(4 * 8), output = twins.Random(2 * 8);
        IndexSlice ids = twins.Indices([1, 4]);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => twins.Gpu.Embedding(ids, table, output, 2, 8));
        StringAssert.Contains(e.Message, "Token id 4 at row 1");
        IndexSlice targets = twins.Indices([0, 9]);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => twins.Gpu.CrossEntropy(table, targets, 2, 8));
        StringAssert.Contains(e.Message, "Target 9 at row 1 is outside the vocabulary [0, 8)");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => twins.Gpu.CrossEntropyBackward(table, targets, table, 2, 8, 1f, false));
        StringAssert.Contains(e.Message, "Target 9 at row 1");
        // Also right after a forward with good targets whose statistics the backward would otherwise take.
        IndexSlice good = twins.Indices([0, 7]);
        twins.Gpu.CrossEntropy(table, good, 2, 8);
        twins.Gpu.LoadIndices([0, -1], good);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => twins.Gpu.CrossEntropyBackward(table, good, output, 2, 8, 1f, false));
        StringAssert.Contains(e.Message, "Target -1 at row 1");
    }

    [TestMethod]
    public void RandomLtdTokenGatherAndScatter()
    {
        using TwinBackends twins = Twins(16);
        TokenDropAgainstTheCpu(twins, "fp32", Elementwise);
    }

    [TestMethod]
    public void KeptTokensThatDoNotRiseStrictlyAreRejectedAsOnTheCpu()
    {
        using TwinBackends twins = Twins(17);
        const int batch = 2, sequence = 6, kept = 2, dim = 3;
        Slice full = twins.Random(batch * sequence * dim), other = twins.Random(batch * sequence * dim);
        Slice packed = twins.Random(batch * kept * dim);
        IndexSlice tokens = twins.Indices([0, 3, 4, 4]);
        foreach (Action op in new Action[]
                 {
                     () => twins.Gpu.GatherTokens(full, tokens, packed, batch, sequence, kept, dim),
                     () => twins.Gpu.GatherTokensBackward(packed, tokens, full, batch, sequence, kept, dim, accumulate: true),
                     () => twins.Gpu.ScatterTokens(full, packed, tokens, other, batch, sequence, kept, dim),
                     () => twins.Gpu.ScatterTokensBackward(full, tokens, other, batch, sequence, kept, dim, accumulate: false),
                 })
        {
            var e = Assert.ThrowsExactly<ArgumentException>(op);
            StringAssert.StartsWith(e.Message, "kept token indices of sample 1 must rise strictly within [0, 6); index 1 is 4.");
        }

        // An index past the sequence, too.
        twins.Gpu.LoadIndices([0, 3, 4, 6], tokens);
        var past = Assert.ThrowsExactly<ArgumentException>(() => twins.Gpu.ScatterTokens(full, packed, tokens, other, batch, sequence, kept, dim));
        StringAssert.StartsWith(past.Message, "kept token indices of sample 1 must rise strictly within [0, 6); index 1 is 6.");
        // Checked before any launch: the GPU wrote nothing (the CPU reference, which checks row by row, may have).
        twins.AssertArenasClose(0f, "nothing written");

        // The CPU reference (still holding the repeated index) gives the same message.
        var cpu = Assert.ThrowsExactly<ArgumentException>(() => twins.Cpu.GatherTokens(full, tokens, packed, batch, sequence, kept, dim));
        StringAssert.StartsWith(cpu.Message, "kept token indices of sample 1 must rise strictly within [0, 6); index 1 is 4.");
    }

    /// <summary>
    /// Random-LTD's GatherTokens, ScatterTokens and their gradients (overwriting and accumulating, onto random stale
    /// values) against the CPU backend: a few kept of many tokens, every token kept, none kept, and a batch of none
    /// (no launch: nothing may change). Copies match exactly, accumulated rows at <paramref name="accumulated"/>.
    /// The fp32 and 16-bit tests share it.
    /// </summary>
    internal static void TokenDropAgainstTheCpu(TwinBackends twins, string label, float accumulated)
    {
        foreach ((int batch, int sequence, int kept, int dim) in new[] { (1, 1, 1, 1), (2, 7, 3, 5), (3, 16, 16, 130), (2, 33, 10, 257), (3, 5, 0, 4), (0, 4, 2, 3) })
        {
            string at = $"{label}, batch {batch}, sequence {sequence}, kept {kept}, dim {dim}";
            long full = (long)Math.Max(batch, 1) * sequence * dim, packed = (long)Math.Max(batch, 1) * kept * dim;
            IndexSlice tokens = twins.Indices(twins.KeptTokens(batch, sequence, kept));
            Slice x = twins.Random(full), gathered = twins.Random(packed);
            twins.Run(ops => ops.GatherTokens(x, tokens, gathered, batch, sequence, kept, dim));
            twins.AssertClose(gathered, 0f, $"gather, {at}");

            Slice layer = twins.Random(packed), scattered = twins.Random(full);
            twins.Run(ops => ops.ScatterTokens(x, layer, tokens, scattered, batch, sequence, kept, dim));
            twins.AssertClose(scattered, 0f, $"scatter, {at}");

            foreach (bool accumulate in new[] { false, true })
            {
                Slice dPacked = twins.Random(packed), dxFromGather = twins.Random(full);
                twins.Run(ops => ops.GatherTokensBackward(dPacked, tokens, dxFromGather, batch, sequence, kept, dim, accumulate));
                twins.AssertClose(dxFromGather, accumulate ? accumulated : 0f, $"gather backward, accumulate {accumulate}, {at}");

                Slice dy = twins.Random(full), dxFromScatter = twins.Random(full);
                twins.Run(ops => ops.ScatterTokensBackward(dy, tokens, dxFromScatter, batch, sequence, kept, dim, accumulate));
                twins.AssertClose(dxFromScatter, accumulate ? accumulated : 0f, $"scatter backward, accumulate {accumulate}, {at}");
            }
        }

        twins.AssertArenasClose(accumulated, $"{label}: nothing else changed");
    }

    [TestMethod]
    public void VocabularyParallelEmbedding()
    {
        using TwinBackends twins = Twins(4);
        foreach ((int rows, int dim, int first, int count) in new[] { (7, 5, 0, 6), (37, 130, 6, 7), (130, 64, 3, 5) })
        {
            Slice table = twins.Random((long)count * dim), output = twins.Random((long)rows * dim);
            IndexSlice ids = twins.Indices(twins.Ints(rows, 13));
            twins.Run(ops => ops.EmbeddingRange(ids, table, output, rows, dim, first, count));
            twins.AssertClose(output, 0f, $"range forward rows {rows}");
            Slice dOutput = twins.Random((long)rows * dim), dTable = twins.Random((long)count * dim);
            twins.Run(ops => ops.EmbeddingRangeBackward(ids, dOutput, dTable, rows, dim, first, count));
            twins.AssertClose(dTable, Elementwise * 10, $"range backward rows {rows}");
        }
    }

    [TestMethod]
    public void LinearForwardAndBackward()
    {
        // Four rounds of the 256×128→384 case need about 1.5M activations.
        using TwinBackends twins = Twins(5, activations: 1 << 22);
        foreach ((int rows, int inDim, int outDim) in new[] { (1, 5, 3), (37, 130, 45), (256, 128, 384) })
        foreach (bool withBias in new[] { false, true })
        foreach (bool accumulate in new[] { false, true })
        {
            string at = $"rows {rows}, {inDim}→{outDim}, bias {withBias}, accumulate {accumulate}";
            Slice x = twins.Random((long)rows * inDim), w = twins.Random((long)outDim * inDim, 0.2f);
            Slice? bias = withBias ? twins.Random(outDim) : null;
            Slice y = twins.Random((long)rows * outDim);
            twins.Run(ops => ops.Linear(x, w, bias, y, rows, inDim, outDim));
            twins.AssertClose(y, Summed, $"y, {at}");

            Slice dy = twins.Random((long)rows * outDim), dx = twins.Random((long)rows * inDim);
            Slice dw = twins.Random((long)outDim * inDim);
            Slice? dBias = withBias ? twins.Random(outDim) : null;
            twins.Run(ops => ops.LinearBackward(x, w, dy, dx, dw, dBias, rows, inDim, outDim, accumulate));
            twins.AssertClose(dx, Summed, $"dx, {at}");
            twins.AssertClose(dw, Summed * 4, $"dW, {at}");
            if (dBias is { } db) twins.AssertClose(db, Summed * 4, $"dBias, {at}");
            // No dx wanted: dW still accumulates.
            twins.Run(ops => ops.LinearBackward(x, w, dy, null, dw, null, rows, inDim, outDim, accumulate));
            twins.AssertClose(dw, Summed * 4, $"dW without dx, {at}");
        }
    }

    [TestMethod]
    public void BiasAndAdd()
    {
        using TwinBackends twins = Twins(6);
        // Offset null: wherever the previous slice ended; 0: y's rows 16-byte aligned (the bias gradient's vector
        // loads); 1: one element off (its element loads), for dims that are multiples of 8.
        foreach ((int rows, int dim, int? offset) in new (int, int, int?)[]
                     { (1, 5, null), (37, 130, null), (300, 257, null), (70, 264, 0), (33, 136, 1) })
        {
            if (offset is { } elements) twins.AlignTo(8, elements);
            Slice y = twins.Random((long)rows * dim), bias = twins.Random(dim);
            twins.Run(ops => ops.AddBias(y, bias, rows, dim));
            twins.AssertClose(y, Elementwise, $"add bias {rows}×{dim}");
            Slice dBias = twins.Random(dim);
            twins.Run(ops => ops.AddBiasBackward(y, dBias, rows, dim));
            twins.AssertClose(dBias, Summed * 4, $"add bias backward {rows}×{dim}");

            long n = (long)rows * dim;
            Slice a = twins.Random(n), b = twins.Random(n), sum = twins.Random(n);
            twins.Run(ops => ops.Add(a, b, sum, n));
            twins.AssertClose(sum, Elementwise, $"add {n}");
            foreach (bool accumulate in new[] { false, true })
            {
                twins.Run(ops => ops.AddBackward(a, b, n, accumulate));
                twins.AssertClose(b, Elementwise, $"add backward {n}, accumulate {accumulate}");
            }
        }
    }

    [TestMethod]
    public void LayerNormAndGelu()
    {
        // Two rounds of the 300×768 case need about 2.3M activations.
        using TwinBackends twins = Twins(7, activations: 1 << 22);
        foreach ((int rows, int dim) in new[] { (1, 5), (37, 130), (300, 768) })
        foreach (bool accumulate in new[] { false, true })
        {
            string at = $"{rows}×{dim}, accumulate {accumulate}";
            Slice x = twins.Random((long)rows * dim, 3f), gamma = twins.Random(dim), beta = twins.Random(dim);
            Slice y = twins.Random((long)rows * dim), mean = twins.Random(rows), rstd = twins.Random(rows);
            twins.Run(ops => ops.LayerNorm(x, gamma, beta, y, mean, rstd, rows, dim));
            twins.AssertClose(y, Summed, $"LayerNorm y, {at}");
            twins.AssertClose(mean, Summed, $"mean, {at}");
            twins.AssertClose(rstd, Summed, $"rstd, {at}");
            Slice dy = twins.Random((long)rows * dim), dx = twins.Random((long)rows * dim);
            Slice dGamma = twins.Random(dim), dBeta = twins.Random(dim);
            twins.Run(ops => ops.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dGamma, dBeta, rows, dim, accumulate));
            twins.AssertClose(dx, Summed * 4, $"LayerNorm dx, {at}");
            twins.AssertClose(dGamma, Summed * 4, $"dGamma, {at}");
            twins.AssertClose(dBeta, Summed * 4, $"dBeta, {at}");

            long n = (long)rows * dim;
            Slice g = twins.Random(n);
            twins.Run(ops => ops.Gelu(x, g, n));
            twins.AssertClose(g, Elementwise * 5, $"GeLU, {at}");
            twins.Run(ops => ops.GeluBackward(x, dy, dx, n, accumulate));
            twins.AssertClose(dx, Elementwise * 5, $"GeLU backward, {at}");
        }
    }

    [TestMethod]
    public void AttentionForwardAndBackward()
    {
        using TwinBackends twins = Twins(8);
        foreach ((int batch, int sequence, int heads, int dim) in new[] { (1, 1, 1, 4), (2, 37, 4, 64), (3, 64, 4, 128) })
        foreach (bool accumulate in new[] { false, true })
        {
            string at = $"batch {batch}, seq {sequence}, heads {heads}, dim {dim}, accumulate {accumulate}";
            Slice qkv = twins.Random(3L * batch * sequence * dim), y = twins.Random((long)batch * sequence * dim);
            Slice lse = twins.Statistics((long)batch * heads * sequence);
            twins.Run(ops => ops.Attention(qkv, y, lse, batch, sequence, heads, dim));
            twins.AssertStatisticsClose(lse, Summed, $"log-sum-exp, {at}");
            twins.AssertClose(y, Summed, $"y, {at}");
            Slice dy = twins.Random((long)batch * sequence * dim), dqkv = twins.Random(3L * batch * sequence * dim);
            twins.Run(ops => ops.AttentionBackward(qkv, y, lse, dy, dqkv, batch, sequence, heads, dim, accumulate));
            twins.AssertClose(dqkv, Summed * 4, $"dqkv, {at}");
        }
    }

    [TestMethod]
    public void CrossEntropyWholeAndVocabularyParallel()
    {
        using TwinBackends twins = Twins(9, activations: 1 << 22);  // the 50K vocabularies
        CrossEntropyAgainstTheCpu(twins, "fp32", Summed, Summed, syncBeforeRange: false);
    }

    /// <summary>
    /// The whole cross-entropy (loss, gradient) and the vocabulary-parallel pieces (row max, partial sums, loss from
    /// partials, range gradient) against the CPU backend, at several shapes, overwriting and accumulating. The loss and
    /// the fp32 statistics are compared at <paramref name="summed"/>, the gradients at <paramref name="gradient"/>;
    /// <paramref name="syncBeforeRange"/> gives both backends the GPU's dlogits before the range gradient (in 16-bit
    /// storage, so that comparison measures that op alone). The fp32 and 16-bit tests share it.
    /// </summary>
    internal static void CrossEntropyAgainstTheCpu(TwinBackends twins, string label, float summed, float gradient,
        bool syncBeforeRange)
    {
        foreach ((int rows, int vocabulary) in new[] { (1, 5), (37, 65), (130, 1000), (9, 5000), (2, 50304), (3, 50257) })
        foreach (bool accumulate in new[] { false, true })
        {
            string at = $"{label}, rows {rows}, vocabulary {vocabulary}, accumulate {accumulate}";
            long n = (long)rows * vocabulary;
            Slice logits = twins.Random(n, 6f), dLogits = twins.Random(n), fusedDLogits = twins.Random(n);
            twins.Run(ops => ops.AddBackward(dLogits, fusedDLogits, n, accumulate: false)); // the same starting values
            IndexSlice targets = twins.Indices(twins.Targets(rows, vocabulary));
            long reused = twins.Gpu.SoftmaxStatisticsReused;
            (float cpuLoss, float gpuLoss) = twins.Run(ops => ops.CrossEntropy(logits, targets, rows, vocabulary));
            Compare.Close(cpuLoss, gpuLoss, summed, $"loss (fp32 from identical logits), {at}");
            twins.Run(ops => ops.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, 3f, accumulate));
            twins.AssertClose(dLogits, gradient, $"dlogits, {at}");
            Assert.AreEqual(reused + 1, twins.Gpu.SoftmaxStatisticsReused, $"the backward right after the forward takes its statistics, {at}");

            // The fused op against the CPU with the pair's tolerances. (On the device its row sums are reduced over the
            // backward's block, not the forward's, so it need not equal the pair bit for bit; the kernel tests check
            // that it does at equal blocks.)
            (float cpuFused, float gpuFused) = twins.Run(ops => ops.CrossEntropyWithGradient(logits, targets, fusedDLogits, rows, vocabulary, 3f, accumulate));
            Assert.AreEqual(cpuLoss, cpuFused, $"CPU fused loss, {at}");
            Compare.Close(cpuLoss, gpuFused, summed, $"GPU fused loss, {at}");
            twins.AssertClose(fusedDLogits, gradient, $"fused dlogits, {at}");

            // One rank's share: vocabulary entries [first, first + vocabulary) of a 3× larger vocabulary.
            int first = vocabulary;
            IndexSlice wide = twins.Indices(twins.Targets(rows, 3 * vocabulary));
            Slice rowMax = twins.Statistics(rows), rowSum = twins.Statistics(rows), targetLogit = twins.Statistics(rows);
            twins.Run(ops =>
            {
                ops.CrossEntropyRowMax(logits, rowMax, rows, vocabulary);
                ops.CrossEntropyPartials(logits, wide, rowMax, rowSum, targetLogit, rows, vocabulary, first);
            });
            twins.AssertStatisticsClose(rowMax, 0f, $"row max, {at}");
            twins.AssertStatisticsClose(rowSum, summed, $"row sum, {at}");
            twins.AssertStatisticsClose(targetLogit, 0f, $"target logit, {at}");
            (float cpuPartial, float gpuPartial) = twins.Run(ops => ops.CrossEntropyFromPartials(rowMax, rowSum, targetLogit, wide, rows));
            Compare.Close(cpuPartial, gpuPartial, summed, $"loss from partials, {at}");
            if (syncBeforeRange) twins.Sync(dLogits);
            twins.Run(ops => ops.CrossEntropyRangeBackward(logits, wide, rowMax, rowSum, dLogits, rows, vocabulary, first, 2f, accumulate));
            twins.AssertClose(dLogits, gradient, $"range dlogits, {at}");
        }
    }

    /// <summary>
    /// CrossEntropyWithGradient with <see cref="CudaOpsOptions.FusedCrossEntropy"/> off runs the forward and backward
    /// kernels: bit for bit the pair's loss and dlogits, the backward taking the forward's statistics; with it on (the
    /// default) the one kernel, and the statistics are not left for a later backward.
    /// </summary>
    [TestMethod]
    public void CrossEntropyWithGradientRunsThePairWhenTheFusedKernelIsOff()
    {
        const int rows = 37, vocabulary = 5000;
        foreach (bool fused in new[] { false, true })
        {
            using var twins = new TwinBackends(GpuSupport.RequireCudaOps(fusedCrossEntropy: fused), seed: 14);
            CudaOps gpu = twins.Gpu;
            Slice logits = twins.Random((long)rows * vocabulary, 6f), pair = twins.Random((long)rows * vocabulary);
            Slice together = twins.Random((long)rows * vocabulary);
            IndexSlice targets = twins.Indices(twins.Ints(rows, vocabulary));
            float pairLoss = gpu.CrossEntropy(logits, targets, rows, vocabulary);
            gpu.CrossEntropyBackward(logits, targets, pair, rows, vocabulary, 2f, accumulate: false);
            long reused = gpu.SoftmaxStatisticsReused;
            float loss = gpu.CrossEntropyWithGradient(logits, targets, together, rows, vocabulary, 2f, accumulate: false);
            Assert.AreEqual(fused ? reused : reused + 1, gpu.SoftmaxStatisticsReused, $"fused {fused}: the pair's statistics");
            if (fused)
            {
                Compare.Close(pairLoss, loss, 1e-6f, "fused loss");
                twins.Cpu.CrossEntropyWithGradient(logits, targets, together, rows, vocabulary, 2f, accumulate: false);
                twins.AssertClose(together, Summed, "fused dlogits against the CPU");
                continue;
            }
            Assert.AreEqual(pairLoss, loss, "the pair's loss");
            CollectionAssert.AreEqual(twins.Read(pair).Gpu, twins.Read(together).Gpu, "the pair's dlogits");
        }
    }

    /// <summary>
    /// The fused cross-entropy keeps a row in shared memory above the default 48 KiB: a second vocabulary larger than
    /// the first (fp32 rows of 80 KB, then 160 KB) raises the kernel's limit again before its launch (the emulated
    /// driver, like a GPU, refuses a launch over the raised limit), and both agree with the CPU.
    /// </summary>
    [TestMethod]
    public void ALargerVocabularyRaisesTheFusedCrossEntropysSharedMemoryAgain()
    {
        using TwinBackends twins = Twins(15);
        const int rows = 3;
        foreach (int vocabulary in new[] { 20000, 40000 })
        {
            Assert.IsTrue(twins.Gpu.StagedCrossEntropyBytes(vocabulary) > 48 * 1024, $"vocabulary {vocabulary} is staged above 48 KiB");
            Slice logits = twins.Random((long)rows * vocabulary, 6f), dLogits = twins.Random((long)rows * vocabulary);
            IndexSlice targets = twins.Indices(twins.Ints(rows, vocabulary));
            (float cpu, float gpu) = twins.Run(ops => ops.CrossEntropyWithGradient(logits, targets, dLogits, rows, vocabulary, 1f, accumulate: false));
            Compare.Close(cpu, gpu, Summed, $"loss, vocabulary {vocabulary}");
            twins.AssertClose(dLogits, Summed, $"dlogits, vocabulary {vocabulary}");
        }
    }

    /// <summary>
    /// The backward takes the forward's row statistics only when nothing came between them: after the logits were
    /// changed (here by Load), or the backward names other logits or targets, it computes its own, and both backends
    /// still agree. The statistics are used once: an in-place backward overwrites the logits they describe.
    /// </summary>
    [TestMethod]
    public void CrossEntropyBackwardUsesTheForwardsStatisticsOnlyWhenTheyStillHold()
    {
        using TwinBackends twins = Twins(12);
        CudaOps gpu = twins.Gpu;
        const int rows = 5, vocabulary = 77;
        Slice logits = twins.Random(rows * vocabulary, 6f), other = twins.Random(rows * vocabulary, 6f);
        Slice dLogits = twins.Random(rows * vocabulary);
        IndexSlice targets = twins.Indices(twins.Ints(rows, vocabulary)), otherTargets = twins.Indices(twins.Ints(rows, vocabulary));
        float[] shifted = Enumerable.Range(0, rows * vocabulary).Select(i => (float)Math.Sin(i) * 9f).ToArray();
        long reused = gpu.SoftmaxStatisticsReused;

        twins.Run(ops => ops.CrossEntropy(logits, targets, rows, vocabulary));
        twins.Run(ops => ops.Load(shifted, logits));
        twins.Run(ops => ops.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, 2f, false));
        twins.AssertClose(dLogits, Summed, "after a Load of new logits");

        twins.Run(ops => ops.CrossEntropy(logits, targets, rows, vocabulary));
        twins.Run(ops => ops.CrossEntropyBackward(other, targets, dLogits, rows, vocabulary, 2f, true));
        twins.AssertClose(dLogits, Summed, "other logits");

        twins.Run(ops => ops.CrossEntropy(logits, targets, rows, vocabulary));
        twins.Run(ops => ops.CrossEntropyBackward(logits, otherTargets, dLogits, rows, vocabulary, 2f, false));
        twins.AssertClose(dLogits, Summed, "other targets");
        Assert.AreEqual(reused, gpu.SoftmaxStatisticsReused, "none of these may take the forward's statistics");

        twins.Run(ops => ops.CrossEntropy(logits, targets, rows, vocabulary));
        twins.Run(ops => ops.CrossEntropyBackward(logits, targets, logits, rows, vocabulary, 2f, false));
        twins.Run(ops => ops.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, 2f, false));
        twins.AssertClose(dLogits, Summed, "a second backward after an in-place one");
        twins.AssertClose(logits, Summed, "in place");
        Assert.AreEqual(reused + 1, gpu.SoftmaxStatisticsReused, "only the first backward after the forward");
    }

    [TestMethod]
    public void ActivationWindowsAreIndependentAndWindowZeroKeepsItsContents()
    {
        using TwinBackends twins = Twins(10);
        Slice a = twins.Random(500), b = twins.Random(500);
        IndexSlice ids = twins.Indices(twins.Ints(10, 5));
        twins.Run(ops => ops.AllocateActivationWindows(3));
        twins.AssertArenasClose(0f, "window 0 kept its contents");
        twins.Run(ops =>
        {
            ops.SelectActivationWindow(2);
            ops.Load(Enumerable.Range(0, 500).Select(i => (float)i).ToArray(), a);
            ops.LoadIndices(Enumerable.Range(0, 10).ToArray(), ids);
            ops.Add(a, a, b, 500);
        });
        twins.AssertArenasClose(0f, "window 2");
        twins.Run(ops => ops.SelectActivationWindow(0));
        twins.AssertArenasClose(0f, "window 0 untouched by window 2");
    }

    [TestMethod]
    public void OperationsAllocateNothingOnTheDeviceAfterTheFirstCall()
    {
        using TwinBackends twins = Twins(11);
        const int rows = 37, dim = 130, vocabulary = 65;
        Slice x = twins.Random(rows * dim), w = twins.Random(dim * dim), y = twins.Random(rows * dim);
        Slice dy = twins.Random(rows * dim), dx = twins.Random(rows * dim), dw = twins.Random(dim * dim), db = twins.Random(dim);
        Slice gamma = twins.Random(dim), mean = twins.Random(rows), rstd = twins.Random(rows);
        Slice logits = twins.Random(rows * vocabulary), lse = twins.Statistics(2 * rows), qkv = twins.Random(3 * rows * dim);
        Slice dqkv = twins.Random(3 * rows * dim);
        IndexSlice targets = twins.Indices(twins.Ints(rows, vocabulary));
        void Everything(ITensorOps<float> ops)
        {
            ops.Linear(x, w, db, y, rows, dim, dim);
            ops.LinearBackward(x, w, dy, dx, dw, db, rows, dim, dim, true);
            ops.LayerNorm(x, gamma, gamma, y, mean, rstd, rows, dim);
            ops.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dw, db, rows, dim, true);
            ops.Attention(qkv, y, lse, 1, rows, 2, dim);
            ops.AttentionBackward(qkv, y, lse, dy, dqkv, 1, rows, 2, dim, true);
            ops.CrossEntropy(logits, targets, rows, vocabulary);
            ops.CrossEntropyBackward(logits, targets, logits, rows, vocabulary, 1f, false);
            ops.EmbeddingBackward(targets, y, dw, rows, dim);
        }

        Everything(twins.Gpu);
        int allocations = twins.Gpu.DeviceAllocations, growths = twins.Gpu.ScratchGrowths;
        for (int i = 0; i < 3; i++) Everything(twins.Gpu);
        Assert.AreEqual(allocations, twins.Gpu.DeviceAllocations, "device allocations after the first round");
        Assert.AreEqual(growths, twins.Gpu.ScratchGrowths);
        Console.WriteLine($"{allocations} device allocations, {twins.Gpu.DeviceBytesAllocated >> 20} MiB, {growths} scratch growths");
    }
}
