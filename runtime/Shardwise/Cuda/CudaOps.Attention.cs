using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>Causal attention: the fused flash kernels where they apply (CudaOps.FlashAttention.cs), else strided-batched GEMMs around softmax.cu.</summary>
public sealed partial class CudaOps
{
    // ---- attention ------------------------------------------------------------------------------------------------

    /// <summary>
    /// In fp16/bf16 with <see cref="CudaOpsOptions.FusedAttention"/>, where the shape allows (<see cref="UsesFlashAttention"/>), the fused flash kernels
    /// (CudaOps.FlashAttention.cs), which never form the probabilities; the buffer planned for them keeps the
    /// log-sum-exp and a copy of y for backward. Otherwise, per batch element, two strided-batched GEMMs over the heads
    /// (a head of q, k or v is the column block h·headDim of the [seq, 3·dim] rows, so the heads are headDim apart)
    /// and one softmax_causal_forward over all rows.
    /// </summary>
    public void Attention(Slice qkv, Slice y, Slice probabilities, int batch, int sequence, int heads, int dim)
    {
        int headDim = HeadDim(dim, heads);
        Begin();
        ulong qkva = Address(qkv, 3L * batch * sequence * dim, nameof(qkv));
        ulong ya = Address(y, (long)batch * sequence * dim, nameof(y));
        ulong pa = Address(probabilities, (long)batch * heads * sequence * sequence, nameof(probabilities));
        if (batch == 0 || sequence == 0) return;
        if (FlashLayout(batch, sequence, heads, dim, pa) is { } flash)
        {
            // The fused kernel writes y into the probabilities buffer beside the log-sum-exp, where backward finds
            // both whatever the memory plan does with y meanwhile; y itself is a copy of it.
            ulong kept = pa + flash.KeptOutputOffset;
            if (!TryFlashAttention(qkva, kept, pa, batch, sequence, heads, dim))
                throw new InvalidOperationException("FlashLayout accepted a shape the flash kernels refuse.");
            CudaCheck.Driver(Interop.CuDriver.cuMemcpyDtoDAsync(ya, kept, (nuint)flash.OutputBytes, 0), "cuMemcpyDtoDAsync_v2");
            return;
        }

        int stride = 3 * dim;
        long square = (long)sequence * sequence;
        float scale = 1f / MathF.Sqrt(headDim);
        for (int b = 0; b < batch; b++)
        {
            ulong q = Element(qkva, (long)b * sequence * stride), k = Element(q, dim);
            // S_h = Q_h · K_hᵀ / √headDim, written where the probabilities go; the softmax then works in place. The
            // scale is the GEMM's alpha (applied in fp32 before the one rounding), so 16-bit scores are stored already
            // scaled, √headDim times further from fp16's overflow than unscaled ones.
            gemm.MultiplyBatched(false, true, sequence, sequence, headDim, scale, q, stride, headDim, k, stride, headDim,
                0f, Element(pa, b * heads * square), sequence, square, heads);
        }

        int rows = batch * heads * sequence;
        Kernel("softmax_causal_forward").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
            pa, pa, rows, sequence, 1f);
        for (int b = 0; b < batch; b++)
        {
            ulong v = Element(qkva, (long)b * sequence * stride + 2L * dim);
            // Y_h = P_h · V_h, into the head's columns of y.
            gemm.MultiplyBatched(false, false, sequence, headDim, sequence, 1f, Element(pa, b * heads * square), sequence,
                square, v, stride, headDim, 0f, Element(ya, (long)b * sequence * dim), dim, headDim, heads);
        }
    }

    /// <summary>
    /// dV = Pᵀ·dY; dP = dY·Vᵀ (into scratch); dS = softmax_causal_backward(P, dP) with 1/√headDim folded in;
    /// dQ = dS·K; dK = dSᵀ·Q — batched over heads, per batch element, as in <see cref="Attention"/>.
    /// </summary>
    public void AttentionBackward(Slice qkv, Slice probabilities, Slice dy, Slice dqkv,
        int batch, int sequence, int heads, int dim, bool accumulate)
    {
        int headDim = HeadDim(dim, heads);
        Begin();
        ulong qkva = Address(qkv, 3L * batch * sequence * dim, nameof(qkv));
        ulong pa = Address(probabilities, (long)batch * heads * sequence * sequence, nameof(probabilities));
        ulong dya = Address(dy, (long)batch * sequence * dim, nameof(dy));
        ulong dqkva = Address(dqkv, 3L * batch * sequence * dim, nameof(dqkv));
        if (batch == 0 || sequence == 0) return;
        if (FlashLayout(batch, sequence, heads, dim, pa) is { } flash)
        {
            if (!TryFlashAttentionBackward(qkva, pa + flash.KeptOutputOffset, dya, pa, dqkva, batch, sequence, heads, dim, accumulate))
                throw new InvalidOperationException("FlashLayout accepted a shape the flash kernels refuse.");
            return;
        }

        int stride = 3 * dim;
        long square = (long)sequence * sequence;
        float beta = accumulate ? 1f : 0f;
        ulong scores = scoreScratch.Ensure((long)batch * heads * square * elementBytes);
        for (int b = 0; b < batch; b++)
        {
            long rowBase = (long)b * sequence * stride;
            ulong v = Element(qkva, rowBase + 2L * dim), dyb = Element(dya, (long)b * sequence * dim);
            ulong pb = Element(pa, b * heads * square), sb = Element(scores, b * heads * square);
            gemm.MultiplyBatched(true, false, sequence, headDim, sequence, 1f, pb, sequence, square, dyb, dim, headDim,
                beta, Element(dqkva, rowBase + 2L * dim), stride, headDim, heads);
            gemm.MultiplyBatched(false, true, sequence, sequence, headDim, 1f, dyb, dim, headDim, v, stride, headDim,
                0f, sb, sequence, square, heads);
        }

        int rows = batch * heads * sequence;
        Kernel("softmax_causal_backward").Launch(Blocks(rows, RowsPerWarpBlock), RowWarpThreads, 0, null,
            pa, scores, scores, rows, sequence, 1f / MathF.Sqrt(headDim));
        for (int b = 0; b < batch; b++)
        {
            long rowBase = (long)b * sequence * stride;
            ulong q = Element(qkva, rowBase), k = Element(q, dim), sb = Element(scores, b * heads * square);
            gemm.MultiplyBatched(false, false, sequence, headDim, sequence, 1f, sb, sequence, square, k, stride, headDim,
                beta, Element(dqkva, rowBase), stride, headDim, heads);
            gemm.MultiplyBatched(true, false, sequence, headDim, sequence, 1f, sb, sequence, square, q, stride, headDim,
                beta, Element(dqkva, rowBase + dim), stride, headDim, heads);
        }
    }
}
