using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>
/// Causal attention: the fused flash kernels where they apply (CudaOps.FlashAttention.cs), else strided-batched GEMMs
/// around softmax.cu. Block-sparse attention (CudaOps.SparseAttention.cs) passes its layout to the softmax, which drops
/// the keys of the tiles it does not keep.
/// </summary>
public sealed partial class CudaOps
{
    // ---- attention ------------------------------------------------------------------------------------------------

    /// <summary>
    /// In fp16/bf16 with <see cref="CudaOpsOptions.FusedAttention"/>, where the shape allows (<see cref="UsesFlashAttention"/>), the fused flash kernels
    /// (CudaOps.FlashAttention.cs), which never form the probabilities. Otherwise, per batch element, two strided-batched
    /// GEMMs over the heads (a head of q, k or v is the column block h·headDim of the [seq, 3·dim] rows, so the heads
    /// are headDim apart) around one softmax_causal_forward, with the element's heads·seq² probabilities in
    /// <see cref="scoreScratch"/>, dropped after. Both paths save the same fp32 log-sum-exp, so backward may take
    /// either path whichever forward took.
    /// </summary>
    public void Attention(Slice qkv, Slice y, Slice logSumExp, int batch, int sequence, int heads, int dim)
    {
        int headDim = HeadDim(dim, heads);
        Begin();
        ulong qkva = Address(qkv, 3L * batch * sequence * dim, nameof(qkv));
        ulong ya = Address(y, (long)batch * sequence * dim, nameof(y));
        ulong la = StatisticsAddress(logSumExp, (long)batch * heads * sequence, nameof(logSumExp));
        if (batch == 0 || sequence == 0) return;
        if (TryFlashAttention(qkva, ya, la, batch, sequence, heads, dim)) return;

        int stride = 3 * dim, rows = heads * sequence;
        long square = (long)sequence * sequence;
        ulong probabilities = scoreScratch.Ensure(heads * square * elementBytes);
        var (layout, _, block) = DeviceSparseLayout(heads, sequence);
        for (int b = 0; b < batch; b++)
        {
            ulong v = Element(qkva, (long)b * sequence * stride + 2L * dim);
            CausalScores(qkva, b, probabilities, sequence, heads, dim); // the softmax then works in place
            Kernel("softmax_causal_forward").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
                probabilities, probabilities, LogSumExpOfBatch(la, b, rows), rows, sequence, 1f, layout, block, heads);
            // Y_h = P_h · V_h, into the head's columns of y.
            gemm.MultiplyBatched(false, false, sequence, headDim, sequence, 1f, probabilities, sequence, square, v,
                stride, headDim, 0f, Element(ya, (long)b * sequence * dim), dim, headDim, heads);
        }
    }

    /// <summary>
    /// The flash backward where it applies (<see cref="TryFlashAttentionBackward"/>). Otherwise, per batch element:
    /// S again, P = exp(S − lse) (softmax_causal_recompute); dV = Pᵀ·dY; dP = dY·Vᵀ; dS = softmax_causal_backward(P, dP)
    /// with 1/√headDim folded in; dQ = dS·K; dK = dSᵀ·Q — batched over heads as in <see cref="Attention"/>, with P and
    /// dS (2·heads·seq² elements) in <see cref="scoreScratch"/>.
    /// </summary>
    public void AttentionBackward(Slice qkv, Slice y, Slice logSumExp, Slice dy, Slice dqkv,
        int batch, int sequence, int heads, int dim, bool accumulate)
    {
        int headDim = HeadDim(dim, heads);
        Begin();
        ulong qkva = Address(qkv, 3L * batch * sequence * dim, nameof(qkv));
        ulong ya = Address(y, (long)batch * sequence * dim, nameof(y));
        ulong la = StatisticsAddress(logSumExp, (long)batch * heads * sequence, nameof(logSumExp));
        ulong dya = Address(dy, (long)batch * sequence * dim, nameof(dy));
        ulong dqkva = Address(dqkv, 3L * batch * sequence * dim, nameof(dqkv));
        if (batch == 0 || sequence == 0) return;
        if (TryFlashAttentionBackward(qkva, ya, dya, la, dqkva, batch, sequence, heads, dim, accumulate)) return;

        int stride = 3 * dim, rows = heads * sequence;
        long square = (long)sequence * sequence;
        float beta = accumulate ? 1f : 0f, scale = 1f / MathF.Sqrt(headDim);
        ulong probabilities = scoreScratch.Ensure(2 * heads * square * elementBytes);
        ulong scores = Element(probabilities, heads * square);
        var (layout, _, block) = DeviceSparseLayout(heads, sequence);
        for (int b = 0; b < batch; b++)
        {
            long rowBase = (long)b * sequence * stride;
            ulong q = Element(qkva, rowBase), k = Element(q, dim), v = Element(q, 2L * dim);
            ulong dyb = Element(dya, (long)b * sequence * dim);
            // P as forward formed it: the same product gives the same scores, then exp(S − lse).
            CausalScores(qkva, b, probabilities, sequence, heads, dim);
            Kernel("softmax_causal_recompute").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
                probabilities, LogSumExpOfBatch(la, b, rows), probabilities, rows, sequence, 1f, layout, block, heads);
            gemm.MultiplyBatched(true, false, sequence, headDim, sequence, 1f, probabilities, sequence, square, dyb, dim,
                headDim, beta, Element(dqkva, rowBase + 2L * dim), stride, headDim, heads);
            gemm.MultiplyBatched(false, true, sequence, sequence, headDim, 1f, dyb, dim, headDim, v, stride, headDim,
                0f, scores, sequence, square, heads);
            Kernel("softmax_causal_backward").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
                probabilities, scores, scores, rows, sequence, scale);
            gemm.MultiplyBatched(false, false, sequence, headDim, sequence, 1f, scores, sequence, square, k, stride,
                headDim, beta, Element(dqkva, rowBase), stride, headDim, heads);
            gemm.MultiplyBatched(true, false, sequence, headDim, sequence, 1f, scores, sequence, square, q, stride,
                headDim, beta, Element(dqkva, rowBase + dim), stride, headDim, heads);
        }
    }

    /// <summary>
    /// S_h = Q_h·K_hᵀ/√headDim for every head of batch element <paramref name="b"/> into <paramref name="scores"/>
    /// (heads·seq² elements). Forward and backward's recompute both call this one product, so backward's probabilities
    /// are forward's. The scale is the GEMM's alpha (applied in fp32 before the one rounding), so 16-bit scores are
    /// stored already scaled, √headDim times further from fp16's overflow than unscaled ones.
    /// </summary>
    private void CausalScores(ulong qkv, int b, ulong scores, int sequence, int heads, int dim)
    {
        int headDim = dim / heads, stride = 3 * dim;
        long square = (long)sequence * sequence;
        ulong q = Element(qkv, (long)b * sequence * stride), k = Element(q, dim);
        gemm.MultiplyBatched(false, true, sequence, sequence, headDim, 1f / MathF.Sqrt(headDim), q, stride, headDim, k,
            stride, headDim, 0f, scores, sequence, square, heads);
    }

    /// <summary>Batch element <paramref name="b"/>'s fp32 log-sum-exps: <paramref name="rows"/> = heads·seq per element.</summary>
    private static ulong LogSumExpOfBatch(ulong logSumExp, int b, int rows) => logSumExp + (ulong)((long)b * rows * sizeof(float));
}
