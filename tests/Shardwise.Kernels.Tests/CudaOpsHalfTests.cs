using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// Every CudaOps operation in fp16 and bf16 storage against CpuOps&lt;float&gt; on random data (category "Gpu":
/// inconclusive without a GPU). Inputs are rounded to the storage type first, so both backends start from the same
/// values and the differences are the GPU's roundings of what it stores.
/// <para>
/// Tolerances are |gpu − cpu| ≤ t·(1 + |cpu|) per element (<see cref="Compare.Close(ReadOnlySpan{float}, ReadOnlySpan{float}, float, string)"/>),
/// in units of u, the unit roundoff of the storage type (2⁻¹¹ for fp16, 2⁻⁸ for bf16):
/// <list type="bullet">
/// <item>0 for copies (embedding forward, the row max, the target logit);</item>
/// <item>2u (+ the fp32 suites' summation slack) for a result rounded once after fp32 arithmetic: elementwise ops,
/// GEMMs (fp32 accumulation, one rounding), the LayerNorm and bias gradients, cross-entropy gradients;</item>
/// <item>4u where two stored roundings chain (Linear's GEMM output, then the bias added to it);</item>
/// <item>2u for attention's probabilities and output too (scores rounded, softmax of rounded scores, probabilities
/// rounded, then P·V: on the emulated device the worst element was 0.6u), and attention's input gradient, a chain of
/// five stored products, as a relative L2 distance of 2u (measured 0.5u);</item>
/// <item>fp32 tolerances for what is not stored in 16 bits: LayerNorm mean/rstd, the cross-entropy losses and row sums.</item>
/// </list>
/// On the emulated device (tests/cuda-emulator) the worst once-rounded element used 0.39 of its 2u tolerance.
/// </para>
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaOpsHalfTests
{
    /// <summary>fp32 slack for reductions in another order (as in <see cref="CudaOpsTests"/>).</summary>
    private const float Summed = 1e-4f;

    /// <summary>4M activation elements: the largest rounds (Linear 256×128→384, LayerNorm 300×768) need over 2M.</summary>
    private static TwinBackends Twins(StorageType storage, int seed) =>
        new(GpuSupport.RequireCudaOps(storage: storage), seed, activations: 1 << 22);

    /// <summary>
    /// LayerNorm over rows that are whole 16-byte vectors on 16-byte boundaries runs the vector kernels: the forward
    /// reads each row once into registers, the backward is one fused pass over x and dy (v3 at GPT-2's width 768); a row
    /// of another width, or a slice off the boundary, takes the scalar forward and the separate dx and
    /// parameter-gradient kernels. Every case matches the CPU backend.
    /// </summary>
    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void LayerNormRunsTheVectorKernelsWhereTheRowsAreAlignedVectors(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 21);
        float tolerance = 2 * storage.UnitRoundoff() + 5 * Summed;
        const int rows = 75;
        foreach ((int dim, int misalignedBy, string kernel) in new[]
                 {
                     (768, 0, "layernorm_backward_fused_v3"), (256, 0, "layernorm_backward_fused_v1"),
                     (768, 1, "layernorm_backward_dx"), (130, 0, "layernorm_backward_dx"),
                 })
        {
            string at = $"{storage}, {rows}×{dim}, misaligned by {misalignedBy}";
            long n = (long)rows * dim;
            Slice mean = twins.Statistics(rows), rstd = twins.Statistics(rows);
            twins.AlignTo(8, misalignedBy);
            Slice x = twins.Random(n, 3f);
            Slice gamma = twins.Random(dim), beta = twins.Random(dim), y = twins.Random(n);
            twins.AlignTo(8, misalignedBy);
            Slice dy = twins.Random(n);
            twins.AlignTo(8, misalignedBy);
            Slice dx = twins.Random(n);
            twins.AlignTo(8);
            Slice dGamma = twins.Random(dim), dBeta = twins.Random(dim);
            twins.AlignTo(8);
            twins.Gpu.StartProfiling();
            twins.Run(ops => ops.LayerNorm(x, gamma, beta, y, mean, rstd, rows, dim));
            twins.Run(ops => ops.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dGamma, dBeta, rows, dim, accumulate: true));
            string[] launches = [.. twins.Gpu.StopProfiling().Select(t => t.Operation)];
            string forward = kernel.StartsWith("layernorm_backward_fused", StringComparison.Ordinal)
                ? "residual_layernorm_forward_v" + kernel[^1]
                : "residual_layernorm_forward";
            foreach (string expected in new[] { $"LayerNorm{CudaOpsProfiler.Separator}{forward}_{storage.Suffix()}",
                         $"LayerNormBackward{CudaOpsProfiler.Separator}{kernel}_{storage.Suffix()}" })
                CollectionAssert.Contains(launches, expected, $"{at}: {string.Join(", ", launches)}");
            twins.AssertClose(y, tolerance, $"LayerNorm y, {at}");
            twins.AssertStatisticsClose(mean, Summed, $"mean, {at}");
            twins.AssertStatisticsClose(rstd, Summed, $"rstd, {at}");

            twins.AssertClose(dx, tolerance, $"LayerNorm dx, {at}");
            twins.AssertClose(dGamma, tolerance, $"dGamma, {at}");
            twins.AssertClose(dBeta, tolerance, $"dBeta, {at}");
        }
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void EmbeddingsAndTheirGradients(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 2);
        float u = storage.UnitRoundoff();
        foreach ((int rows, int dim) in new[] { (1, 5), (37, 130), (300, 64) })
        {
            const int vocabulary = 11;
            Slice table = twins.Random(vocabulary * dim), output = twins.Random((long)rows * dim);
            IndexSlice ids = twins.Indices(twins.Ints(rows, vocabulary));
            twins.Run(ops => ops.Embedding(ids, table, output, rows, dim));
            twins.AssertClose(output, 0f, $"{storage} embedding rows {rows} dim {dim}");

            Slice dOutput = twins.Random((long)rows * dim), dTable = twins.Random(vocabulary * dim);
            twins.Run(ops => ops.EmbeddingBackward(ids, dOutput, dTable, rows, dim));
            twins.AssertClose(dTable, 2 * u + Summed, $"{storage} embedding backward rows {rows} dim {dim}");

            const int first = 3, count = 5;
            Slice rangeTable = twins.Random((long)count * dim), rangeOutput = twins.Random((long)rows * dim);
            twins.Run(ops => ops.EmbeddingRange(ids, rangeTable, rangeOutput, rows, dim, first, count));
            twins.AssertClose(rangeOutput, 0f, $"{storage} range forward rows {rows}");
            Slice dRange = twins.Random((long)count * dim);
            twins.Run(ops => ops.EmbeddingRangeBackward(ids, dOutput, dRange, rows, dim, first, count));
            twins.AssertClose(dRange, 2 * u + Summed, $"{storage} range backward rows {rows}");

            int batch = 3, sequence = Math.Max(1, rows / 3);
            IndexSlice positions = twins.Indices(new int[batch * sequence]);
            Slice positionTable = twins.Random((long)sequence * dim), looked = twins.Random((long)batch * sequence * dim);
            twins.Run(ops =>
            {
                ops.Positions(positions, batch, sequence);
                ops.Embedding(positions, positionTable, looked, batch * sequence, dim);
            });
            twins.AssertClose(looked, 0f, $"{storage} positions batch {batch} sequence {sequence}");
        }

        twins.AssertArenasClose(2 * u + Summed, $"{storage}: nothing else changed");
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void LinearForwardAndBackward(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 5);
        float u = storage.UnitRoundoff();
        foreach ((int rows, int inDim, int outDim) in new[] { (1, 5, 3), (37, 130, 45), (256, 128, 384) })
        foreach (bool withBias in new[] { false, true })
        foreach (bool accumulate in new[] { false, true })
        {
            string at = $"{storage}, rows {rows}, {inDim}→{outDim}, bias {withBias}, accumulate {accumulate}";
            Slice x = twins.Random((long)rows * inDim), w = twins.Random((long)outDim * inDim, 0.2f);
            Slice? bias = withBias ? twins.Random(outDim) : null;
            Slice y = twins.Random((long)rows * outDim);
            twins.Run(ops => ops.Linear(x, w, bias, y, rows, inDim, outDim));
            twins.AssertClose(y, (withBias ? 4 : 2) * u + Summed, $"y, {at}");

            Slice dy = twins.Random((long)rows * outDim), dx = twins.Random((long)rows * inDim);
            Slice dw = twins.Random((long)outDim * inDim);
            Slice? dBias = withBias ? twins.Random(outDim) : null;
            twins.Run(ops => ops.LinearBackward(x, w, dy, dx, dw, dBias, rows, inDim, outDim, accumulate));
            twins.AssertClose(dx, 2 * u + Summed, $"dx, {at}");
            twins.AssertClose(dw, 2 * u + 4 * Summed, $"dW, {at}");
            if (dBias is { } db) twins.AssertClose(db, 2 * u + 4 * Summed, $"dBias, {at}");
            twins.Sync(dw);
            twins.Run(ops => ops.LinearBackward(x, w, dy, null, dw, null, rows, inDim, outDim, accumulate));
            twins.AssertClose(dw, 2 * u + 4 * Summed, $"dW without dx, {at}");
        }
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void BiasAndAdd(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 6);
        float once = 2 * storage.UnitRoundoff() + Summed;
        // Offset null: wherever the previous slice ended; 0: y's rows 16-byte aligned (the bias gradient's vector
        // loads); 1: one element off (its element loads), for dims that are multiples of 8.
        foreach ((int rows, int dim, int? offset) in new (int, int, int?)[]
                     { (1, 5, null), (37, 130, null), (300, 257, null), (70, 264, 0), (33, 136, 1) })
        {
            if (offset is { } elements) twins.AlignTo(8, elements);
            Slice y = twins.Random((long)rows * dim), bias = twins.Random(dim);
            twins.Run(ops => ops.AddBias(y, bias, rows, dim));
            twins.AssertClose(y, once, $"{storage} add bias {rows}×{dim}");
            Slice dBias = twins.Random(dim);
            twins.Sync(y);
            twins.Run(ops => ops.AddBiasBackward(y, dBias, rows, dim));
            twins.AssertClose(dBias, once + 4 * Summed, $"{storage} add bias backward {rows}×{dim}");

            long n = (long)rows * dim;
            Slice a = twins.Random(n), b = twins.Random(n), sum = twins.Random(n);
            twins.Run(ops => ops.Add(a, b, sum, n));
            twins.AssertClose(sum, once, $"{storage} add {n}");
            foreach (bool accumulate in new[] { false, true })
            {
                twins.Run(ops => ops.AddBackward(a, b, n, accumulate));
                twins.AssertClose(b, once, $"{storage} add backward {n}, accumulate {accumulate}");
                twins.Sync(b);
            }
        }
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void LayerNormKeepsItsStatisticsInFp32AndGelu(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 7);
        float once = 2 * storage.UnitRoundoff() + Summed;
        foreach ((int rows, int dim) in new[] { (1, 5), (37, 130), (300, 768) })
        foreach (bool accumulate in new[] { false, true })
        {
            string at = $"{storage}, {rows}×{dim}, accumulate {accumulate}";
            Slice x = twins.Random((long)rows * dim, 3f), gamma = twins.Random(dim), beta = twins.Random(dim);
            Slice y = twins.Random((long)rows * dim), mean = twins.Statistics(rows), rstd = twins.Statistics(rows);
            twins.Run(ops => ops.LayerNorm(x, gamma, beta, y, mean, rstd, rows, dim));
            twins.AssertClose(y, once, $"LayerNorm y, {at}");
            // The statistics of identical inputs, computed and kept in fp32: fp32 agreement, not 16-bit.
            twins.AssertStatisticsClose(mean, Summed, $"mean, {at}");
            twins.AssertStatisticsClose(rstd, Summed, $"rstd, {at}");
            Slice dy = twins.Random((long)rows * dim), dx = twins.Random((long)rows * dim);
            Slice dGamma = twins.Random(dim), dBeta = twins.Random(dim);
            twins.Run(ops => ops.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dGamma, dBeta, rows, dim, accumulate));
            twins.AssertClose(dx, once + 4 * Summed, $"LayerNorm dx, {at}");
            twins.AssertClose(dGamma, once + 4 * Summed, $"dGamma, {at}");
            twins.AssertClose(dBeta, once + 4 * Summed, $"dBeta, {at}");

            long n = (long)rows * dim;
            Slice g = twins.Random(n);
            twins.Run(ops => ops.Gelu(x, g, n));
            twins.AssertClose(g, once, $"GeLU, {at}");
            twins.Sync(dx);
            twins.Run(ops => ops.GeluBackward(x, dy, dx, n, accumulate));
            twins.AssertClose(dx, once, $"GeLU backward, {at}");
        }

        twins.AssertArenasClose(once + 4 * Summed, $"{storage}: every slice after LayerNorm and GeLU");
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void AttentionForwardAndBackward(StorageType storage)
    {
        // The GEMM path, the flash path, the flash path with dQ from the stored dSᵀ tiles, and with stored dS asked
        // for under a bound (24 KiB) that batch 2 × 4 heads × 37² fits (21.9 KB) and 3 × 4 × 64² (98 KB) does not:
        // that one recomputes dQ.
        foreach ((bool fused, bool askedForStoredScores, long bound) in new[]
                 { (true, false, 1L << 30), (false, false, 1L << 30), (true, true, 1L << 30), (true, true, 24L << 10) })
        {
            CudaOps backend = GpuSupport.RequireCudaOps(storage: storage, fusedAttention: fused,
                flashDqFromStoredScores: askedForStoredScores, flashStoredScoresMaxBytes: bound);
            using var twins = new TwinBackends(backend, 8, activations: 1 << 22);
            float u = storage.UnitRoundoff();
            foreach ((int batch, int sequence, int heads, int dim) in new[] { (1, 1, 1, 4), (2, 37, 4, 64), (3, 64, 4, 128) })
            foreach (bool accumulate in new[] { false, true })
            {
                bool storedScores = askedForStoredScores && ((long)batch * heads * sequence * sequence + 8) * 2 <= bound;
                string at = $"{storage}, fused {fused}, stored dS {storedScores} (bound {bound}), batch {batch}, seq {sequence}, heads {heads}, dim {dim}, accumulate {accumulate}";
                Slice qkv = twins.Random(3L * batch * sequence * dim);
                twins.AlignTo(8); // y starts on a 16-byte boundary, as the planner's buffers do (the flash kernels write pairs)
                Slice y = twins.Random((long)batch * sequence * dim);
                Slice lse = twins.Statistics((long)batch * heads * sequence);
                twins.Run(ops => ops.Attention(qkv, y, lse, batch, sequence, heads, dim));
                // Both paths save only the log-sum-exp; the GEMM path's is of 16-bit rounded scores.
                bool flash = twins.Gpu.UsesFlashAttention(batch, sequence, heads, dim);
                Assert.AreEqual(fused && dim / heads % 16 == 0, flash, $"which shapes the flash path takes: {at}");
                twins.AssertStatisticsClose(lse, 2 * u, $"log-sum-exp, {at}");
                twins.AssertClose(y, 2 * u, $"y, {at}");
                // dy 16-byte aligned, then one element off: the flash D kernel's vector and element loads.
                twins.AlignTo(8, accumulate ? 1 : 0);
                Slice dy = twins.Random((long)batch * sequence * dim), dqkv = twins.Random(3L * batch * sequence * dim);
                // The backward's inputs as the GPU saved them, on both sides.
                twins.Sync(y);
                twins.SyncStatistics(lse);
                twins.Gpu.StartProfiling();
                twins.Run(ops => ops.AttentionBackward(qkv, y, lse, dy, dqkv, batch, sequence, heads, dim, accumulate));
                string[] launches = [.. twins.Gpu.StopProfiling().Select(t => t.Operation)];
                if (flash)
                {
                    string dq = storedScores ? "flash_attention_backward_dq_stored" : "flash_attention_backward_dq_d";
                    string other = storedScores ? "flash_attention_backward_dq_d" : "flash_attention_backward_dq_stored";
                    Assert.IsTrue(launches.Any(l => l.Contains(dq, StringComparison.Ordinal)), $"{dq} ran: {string.Join(", ", launches)}, {at}");
                    Assert.IsFalse(launches.Any(l => l.Contains(other, StringComparison.Ordinal)), $"{other} did not: {string.Join(", ", launches)}, {at}");
                }
                (float[] cpu, float[] gpu) = twins.Read(dqkv);
                Norms.RelativeClose(cpu, gpu, 2 * u, $"dqkv, {at}");
            }

            // The memory report names what no plan counts: the attention scratch (at least the largest dSᵀ buffer
            // stored, batch 2 × 4 heads × 37² 16-bit values = 21.9 KB, where it was) and cuBLAS's workspace.
            string memory = backend.DescribeWorkingMemory();
            StringAssert.Contains(memory, "cuBLAS workspace 32.0 MiB");
            StringAssert.Contains(memory, "attention: ");
            if (fused && askedForStoredScores)
                Assert.IsTrue(backend.AttentionScratchBytes >= 2L * 4 * 37 * 37 * 2, memory);
        }
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void CrossEntropyWholeAndVocabularyParallel(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 9);
        CudaOpsTests.CrossEntropyAgainstTheCpu(twins, storage.ToString(), Summed, 2 * storage.UnitRoundoff() + Summed, syncBeforeRange: true);
    }

    /// <summary>Random-LTD's token gather and scatter: copies exact, the accumulating backward rounded once (2u).</summary>
    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void RandomLtdTokenGatherAndScatter(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 16);
        CudaOpsTests.TokenDropAgainstTheCpu(twins, storage.ToString(), 2 * storage.UnitRoundoff());
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void ActivationWindowsAndNoDeviceAllocationAfterTheFirstCall(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 10);
        const int rows = 37, dim = 128, vocabulary = 65;
        Slice x = twins.Random(rows * dim), w = twins.Random(dim * dim, 0.2f), y = twins.Random(rows * dim);
        Slice dy = twins.Random(rows * dim), dx = twins.Random(rows * dim), dw = twins.Random(dim * dim), db = twins.Random(dim);
        Slice gamma = twins.Random(dim), mean = twins.Statistics(rows), rstd = twins.Statistics(rows);
        Slice logits = twins.Random(rows * vocabulary), lse = twins.Statistics(4 * rows), qkv = twins.Random(3 * rows * dim);
        Slice dqkv = twins.Random(3 * rows * dim);
        IndexSlice targets = twins.Indices(twins.Ints(rows, vocabulary));
        void Everything(ITensorOps<float> ops)
        {
            ops.Linear(x, w, db, y, rows, dim, dim);
            ops.LinearBackward(x, w, dy, dx, dw, db, rows, dim, dim, true);
            ops.LayerNorm(x, gamma, gamma, y, mean, rstd, rows, dim);
            ops.LayerNormBackward(x, gamma, mean, rstd, dy, dx, dw, db, rows, dim, true);
            ops.Attention(qkv, y, lse, 1, rows, 4, dim);
            ops.AttentionBackward(qkv, y, lse, dy, dqkv, 1, rows, 4, dim, true);
            ops.CrossEntropy(logits, targets, rows, vocabulary);
            ops.CrossEntropyBackward(logits, targets, logits, rows, vocabulary, 1f, false);
            ops.EmbeddingBackward(targets, y, dw, rows, dim);
        }

        Everything(twins.Gpu);
        int allocations = twins.Gpu.DeviceAllocations, growths = twins.Gpu.ScratchGrowths;
        for (int i = 0; i < 3; i++) Everything(twins.Gpu);
        Assert.AreEqual(allocations, twins.Gpu.DeviceAllocations, "device allocations after the first round");
        Assert.AreEqual(growths, twins.Gpu.ScratchGrowths);

        // A second window keeps 16-bit tensors and fp32 statistics apart from window 0.
        var values = new float[rows * dim];
        for (int i = 0; i < values.Length; i++) values[i] = (i % 97) - 48.5f; // representable in both 16-bit types
        var before = new float[rows * dim];
        twins.Gpu.Store(x, before);
        twins.Gpu.AllocateActivationWindows(2);
        twins.Gpu.SelectActivationWindow(1);
        twins.Gpu.Load(values, x);
        twins.Gpu.LoadStatistics([.. values.AsSpan(0, rows)], mean);
        var read = new float[rows * dim];
        twins.Gpu.Store(x, read);
        CollectionAssert.AreEqual(values, read, "window 1");
        twins.Gpu.SelectActivationWindow(0);
        twins.Gpu.Store(x, read);
        CollectionAssert.AreEqual(before, read, "window 0 untouched by window 1");
    }
}
