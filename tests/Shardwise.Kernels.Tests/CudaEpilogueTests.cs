using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The GEMMs with a cuBLASLt epilogue (CudaEpilogueGemm) against CpuOps&lt;float&gt;, whose fused ops are the unfused
/// sequence: <see cref="ITensorOps{T}.LinearGelu"/> (GELU_AUX_BIAS / GELU_AUX), <see cref="ITensorOps{T}.GeluLinearBackward"/>
/// (DGELU) and a biased <see cref="ITensorOps{T}.LinearBackward"/> (BGRADB), in fp32, fp16 and bf16 storage (category
/// "Gpu": the emulated device in Shardwise.CudaEmulation.Tests, the real cuBLASLt on a GPU). Each also checks, with the
/// profiler, that the fused call really is one matmul where cuBLASLt can take it (aux leading dimension a multiple of
/// 8) and falls back to the unfused launches where it cannot, with the same results.
/// <para>
/// Tolerances as in <see cref="CudaOpsHalfTests"/>: t·(1 + |cpu|) per element, t in units of the storage's unit
/// roundoff u (0 in fp32) plus fp32 summation slack; 4u where the fallback chains two stored roundings (the GEMM's, then
/// GeLU's or GeLU′'s), which also covers the fused path's single rounding.
/// </para>
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaEpilogueTests
{
    private const float Summed = 1e-4f;

    /// <summary>cuBLASLt's rule for the GeLU aux matrix: its leading dimension a multiple of 8 (CudaEpilogueGemm).</summary>
    private const int AuxMultiple = 8;

    private static TwinBackends Twins(StorageType storage, int seed) =>
        new(GpuSupport.RequireCudaOps(storage: storage), seed, activations: 1 << 20);

    /// <summary>A random slice starting on a 128-element boundary (256-byte aligned in every storage), as arena buffers are.</summary>
    private static Slice Aligned(TwinBackends twins, long count, float scale = 1f)
    {
        Slice slice = twins.Random(count, scale);
        long pad = (128 - count % 128) % 128;
        if (pad > 0) twins.Random(pad);
        return slice;
    }

    /// <summary>The launches (kernels and cuBLAS/cuBLASLt calls) <paramref name="op"/> made on the GPU, in first-seen order.</summary>
    private static string[] Launches(CudaOps gpu, Action op)
    {
        gpu.StartProfiling();
        op();
        return gpu.StopProfiling().Select(t => t.Operation).Where(n => n.Contains(CudaOpsProfiler.Separator, StringComparison.Ordinal)).ToArray();
    }

    [TestMethod]
    [DataRow(StorageType.Float32)]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void LinearGeluIsOneMatmulAndMatchesTheCpu(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 31);
        float u = storage.UnitRoundoff();
        // 40 and 64 outputs: the aux leading dimension is a multiple of 8, one GELU_AUX(_BIAS) matmul; 36: the fallback.
        foreach ((int rows, int inDim, int outDim) in new[] { (37, 24, 40), (5, 130, 64), (37, 24, 36) })
        foreach (bool withBias in new[] { true, false })
        {
            string at = $"{storage}, rows {rows}, {inDim}→{outDim}, bias {withBias}";
            Slice x = Aligned(twins, (long)rows * inDim), w = Aligned(twins, (long)outDim * inDim, 0.3f);
            Slice? bias = withBias ? Aligned(twins, outDim) : null;
            Slice pre = Aligned(twins, (long)rows * outDim), y = Aligned(twins, (long)rows * outDim);
            twins.Cpu.LinearGelu(x, w, bias, pre, y, rows, inDim, outDim);
            string[] launches = Launches(twins.Gpu, () => twins.Gpu.LinearGelu(x, w, bias, pre, y, rows, inDim, outDim));

            if (outDim % AuxMultiple == 0)
            {
                string epilogue = withBias ? "gemm+bias+gelu" : "gemm+gelu";
                CollectionAssert.AreEqual(new[] { $"LinearGelu › {epilogue} {rows}×{outDim}×{inDim} Bᵀ" }, launches, string.Join(", ", launches));
            }
            else
            {
                Assert.IsTrue(launches.Length >= 2 && launches.Any(n => n.Contains("bias_gelu_forward", StringComparison.Ordinal)),
                    $"{at}: the unfused fallback: {string.Join(", ", launches)}");
            }

            twins.AssertClose(pre, (withBias ? 4 : 2) * u + Summed, $"pre-activation, {at}");
            twins.AssertClose(y, 4 * u + Summed, $"GeLU output, {at}");
        }

        twins.AssertArenasClose(4 * storage.UnitRoundoff() + Summed, $"{storage}: nothing else changed");
    }

    [TestMethod]
    [DataRow(StorageType.Float32)]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void GeluLinearBackwardIsOneDgeluMatmulAndMatchesTheCpu(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 32);
        float u = storage.UnitRoundoff();
        // The aux (pre-activation) has inDim columns: 40 and 64 fuse, 36 falls back.
        foreach ((int rows, int inDim, int outDim) in new[] { (37, 40, 24), (5, 64, 130), (37, 36, 24) })
        foreach (bool withBias in new[] { true, false })
        {
            string at = $"{storage}, rows {rows}, {inDim}→{outDim}, bias {withBias}";
            Slice pre = Aligned(twins, (long)rows * inDim, 2f), x = Aligned(twins, (long)rows * inDim);
            Slice w = Aligned(twins, (long)outDim * inDim, 0.3f), dy = Aligned(twins, (long)rows * outDim);
            // dPre holds stale values (it is overwritten); dW and dBias hold earlier gradients (they are added to).
            Slice dPre = Aligned(twins, (long)rows * inDim), dw = Aligned(twins, (long)outDim * inDim);
            Slice? dBias = withBias ? Aligned(twins, outDim) : null;
            twins.Cpu.GeluLinearBackward(pre, x, w, dy, dPre, dw, dBias, rows, inDim, outDim);
            string[] launches = Launches(twins.Gpu, () => twins.Gpu.GeluLinearBackward(pre, x, w, dy, dPre, dw, dBias, rows, inDim, outDim));

            bool fused = inDim % AuxMultiple == 0;
            Assert.AreEqual(fused, launches.Contains($"GeluLinearBackward › gemm+dgelu {rows}×{inDim}×{outDim}"), $"{at}: {string.Join(", ", launches)}");
            Assert.AreEqual(!fused, launches.Any(n => n.Contains("gelu_backward", StringComparison.Ordinal)), $"{at}: {string.Join(", ", launches)}");

            twins.AssertClose(dPre, 4 * u + Summed, $"dPre, {at}");
            twins.AssertClose(dw, 2 * u + 4 * Summed, $"dW, {at}");
            if (dBias is { } db) twins.AssertClose(db, 2 * u + 4 * Summed, $"dBias, {at}");
        }

        twins.AssertArenasClose(4 * storage.UnitRoundoff() + 4 * Summed, $"{storage}: nothing else changed");
    }

    /// <summary>
    /// A biased fp32 LinearBackward takes its bias gradient from the weight-gradient GEMM's BGRADB epilogue (no
    /// column-sum partial kernel), a 16-bit one from the column-sum kernels (cuBLASLt's fallback), added to the earlier
    /// gradient, with and without dx and with dx accumulated or overwritten.
    /// </summary>
    [TestMethod]
    [DataRow(StorageType.Float32)]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void LinearBackwardTakesTheBiasGradientFromTheWeightGradientMatmul(StorageType storage)
    {
        using TwinBackends twins = Twins(storage, 33);
        float u = storage.UnitRoundoff();
        foreach ((int rows, int inDim, int outDim) in new[] { (37, 24, 40), (130, 33, 7) })
        foreach (bool accumulate in new[] { false, true })
        foreach (bool withDx in new[] { true, false })
        {
            string at = $"{storage}, rows {rows}, {inDim}→{outDim}, accumulate {accumulate}, dx {withDx}";
            Slice x = Aligned(twins, (long)rows * inDim), w = Aligned(twins, (long)outDim * inDim, 0.3f);
            Slice dy = Aligned(twins, (long)rows * outDim), dx = Aligned(twins, (long)rows * inDim);
            Slice dw = Aligned(twins, (long)outDim * inDim), dBias = Aligned(twins, outDim);
            Slice? dxOrNull = withDx ? dx : null;
            twins.Cpu.LinearBackward(x, w, dy, dxOrNull, dw, dBias, rows, inDim, outDim, accumulate);
            string[] launches = Launches(twins.Gpu, () => twins.Gpu.LinearBackward(x, w, dy, dxOrNull, dw, dBias, rows, inDim, outDim, accumulate));

            // cuBLASLt has BGRADB with an fp32 bias gradient for fp32 operands only (none for fp16/bf16 on the H200,
            // docs/gpu-results.md run 10; one with a 16-bit bias gradient, measured slower in run 12): 16-bit storage
            // takes the column-sum kernels.
            bool fused = storage == StorageType.Float32;
            Assert.AreEqual(fused, launches.Contains($"LinearBackward › gemm+bgradb {outDim}×{inDim}×{rows} Aᵀ"), $"{at}: {string.Join(", ", launches)}");
            Assert.AreEqual(!fused, launches.Any(n => n.Contains("add_bias_backward_partial", StringComparison.Ordinal)), $"{at}: {string.Join(", ", launches)}");

            if (withDx) twins.AssertClose(dx, 2 * u + Summed, $"dx, {at}");
            twins.AssertClose(dw, 2 * u + 4 * Summed, $"dW, {at}");
            twins.AssertClose(dBias, 2 * u + 4 * Summed, $"dBias, {at}");
        }
    }

    /// <summary>
    /// With GEMM tuning (CudaGemmTuner) every Linear product runs through cuBLASLt and the first call of each shape
    /// times its candidates on the real operands: the results still match the CPU on that first call and the next,
    /// and a product that adds into its output (dx accumulated, dW and dBias) adds exactly once although each
    /// candidate ran several times.
    /// </summary>
    [TestMethod]
    [DataRow(StorageType.Float32)]
    [DataRow(StorageType.BFloat16)]
    public void TunedProductsMatchTheCpuAndAddIntoTheirOutputsOnce(StorageType storage)
    {
        using var twins = new TwinBackends(GpuSupport.RequireCudaOps(storage: storage, gemmTuning: true), 34, activations: 1 << 20);
        float u = storage.UnitRoundoff();
        const int rows = 37, inDim = 24, outDim = 40;
        Slice x = Aligned(twins, (long)rows * inDim), w = Aligned(twins, (long)outDim * inDim, 0.3f);
        Slice y = Aligned(twins, (long)rows * outDim), dy = Aligned(twins, (long)rows * outDim);
        Slice dx = Aligned(twins, (long)rows * inDim), dw = Aligned(twins, (long)outDim * inDim);
        Slice dBias = Aligned(twins, outDim), bias = Aligned(twins, outDim);
        Slice pre = Aligned(twins, (long)rows * outDim), h = Aligned(twins, (long)rows * outDim);
        for (int call = 1; call <= 2; call++)
        {
            string at = $"{storage}, call {call}";
            foreach (ITensorOps<float> ops in twins.Both)
            {
                ops.Linear(x, w, null, y, rows, inDim, outDim);
                ops.LinearBackward(x, w, dy, dx, dw, dBias, rows, inDim, outDim, accumulate: true);
                ops.LinearGelu(x, w, bias, pre, h, rows, inDim, outDim);
            }

            twins.AssertClose(y, 2 * u + Summed, $"y, {at}");
            twins.AssertClose(dx, 2 * u + 4 * Summed, $"dx accumulated, {at}");
            twins.AssertClose(dw, 2 * u + 4 * Summed, $"dW accumulated, {at}");
            twins.AssertClose(dBias, 2 * u + 4 * Summed, $"dBias accumulated, {at}");
            twins.AssertClose(h, 4 * u + Summed, $"GeLU output, {at}");
        }

        // Linear without bias, dx, dW with BGRADB, GELU_AUX_BIAS: four shapes, each timed once where the heuristic
        // offers more than one candidate (the emulated one always does; the real one may not for a tiny shape).
        if (GpuSupport.Emulated) Assert.AreEqual(4, twins.Gpu.TunedGemmPlans, storage.ToString());
        else Assert.IsTrue(twins.Gpu.TunedGemmPlans is >= 1 and <= 4, $"{storage}: {twins.Gpu.TunedGemmPlans} plans tuned");
        twins.AssertArenasClose(4 * u + 4 * Summed, $"{storage}: nothing else changed");
    }

    /// <summary>
    /// With <see cref="CudaOpsOptions.BiasGradientByProduct"/> a bias gradient without a GEMM epilogue (every one in
    /// 16-bit storage, and AddBiasBackward in any) is one cuBLAS product dyᵀ·1 into fp32 plus the one-chunk add: no
    /// column-sum partial kernel; the sums match the CPU, added to the earlier gradient, as the rows grow (the ones
    /// vector grows with them) and shrink.
    /// </summary>
    [TestMethod]
    [DataRow(StorageType.Float32)]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void BiasGradientByProductMatchesTheCpu(StorageType storage)
    {
        var gpu = GpuSupport.RequireCudaOps(storage: storage, biasGradientByProduct: true);
        using var twins = new TwinBackends(gpu, 35, activations: 1 << 20);
        float u = storage.UnitRoundoff();
        foreach ((int rows, int inDim, int outDim) in new[] { (37, 24, 40), (130, 33, 7), (5, 8, 300) })
        {
            string at = $"{storage}, rows {rows}, {inDim}→{outDim}";
            Slice x = Aligned(twins, (long)rows * inDim), w = Aligned(twins, (long)outDim * inDim, 0.3f);
            Slice dy = Aligned(twins, (long)rows * outDim), dx = Aligned(twins, (long)rows * inDim);
            Slice dw = Aligned(twins, (long)outDim * inDim), dBias = Aligned(twins, outDim), dBias2 = Aligned(twins, outDim);
            twins.Cpu.LinearBackward(x, w, dy, dx, dw, dBias, rows, inDim, outDim, accumulate: true);
            twins.Cpu.AddBiasBackward(dy, dBias2, rows, outDim);
            string[] launches = Launches(twins.Gpu, () =>
            {
                twins.Gpu.LinearBackward(x, w, dy, dx, dw, dBias, rows, inDim, outDim, accumulate: true);
                twins.Gpu.AddBiasBackward(dy, dBias2, rows, outDim);
            });

            string all = string.Join(", ", launches);
            Assert.IsFalse(launches.Any(n => n.Contains("add_bias_backward_partial", StringComparison.Ordinal)), $"{at}: {all}");
            string product = $"gemm {outDim}×1×{rows} Aᵀ → fp32";
            // fp32 LinearBackward takes BGRADB; its AddBiasBackward, and both in 16 bits, take the product.
            int products = launches.Count(n => n.EndsWith(product, StringComparison.Ordinal));
            Assert.AreEqual(storage == StorageType.Float32 ? 1 : 2, products, $"{at}: {all}");
            twins.AssertClose(dBias, 2 * u + 4 * Summed, $"LinearBackward's dBias, {at}");
            twins.AssertClose(dBias2, 2 * u + 4 * Summed, $"AddBiasBackward's dBias, {at}");
            twins.AssertClose(dw, 2 * u + 4 * Summed, $"dW, {at}");
        }

        twins.AssertArenasClose(4 * u + 4 * Summed, $"{storage}: nothing else changed");
    }
}
