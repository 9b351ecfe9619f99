using System;
using System.Numerics;
using System.Numerics.Tensors;
using Shardwise.Sparsity;

namespace Shardwise.Cpu;

/// <summary>
/// Causal multi-head self-attention core. qkv is <c>[batch, seq, 3·dim]</c> with q, k, v side by side, each split
/// into heads of dim/heads; one head is addressed in place through the leading dimension 3·dim, so no head is
/// ever copied out. The work unit is one (batch, head) pair, which callers may run in parallel: pairs write
/// disjoint parts of y and dqkv. With a <see cref="BlockSparseLayout"/>, each head goes to
/// <see cref="SparseAttentionKernels"/>, which works on the kept tiles only (the reference the block-sparse GPU kernels
/// are checked against); its scratch lengths are <see cref="ScratchPerPair"/>'s.
/// </summary>
public static class AttentionKernels
{
    /// <summary>All (batch, head) pairs in order; see <see cref="ForwardHead"/>. <paramref name="scratch"/> holds at least <see cref="ScratchPerPair"/> elements.</summary>
    public static void Forward<T>(ReadOnlySpan<T> qkv, Span<T> y, Span<T> logSumExp, Span<T> scratch,
        int batch, int sequence, int heads, int dim, BlockSparseLayout? layout = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                ForwardHead(QkvOfBatch(qkv, b, sequence, dim), LogSumExpOfHead(logSumExp, b, h, sequence, heads),
                    OutputOfBatch(y, b, sequence, dim), scratch, sequence, heads, h, dim, layout);
            }
        }
    }

    /// <summary>All (batch, head) pairs in order; <paramref name="scratch"/> holds at least <see cref="ScratchPerPair"/> elements (backward).</summary>
    public static void Backward<T>(ReadOnlySpan<T> qkv, ReadOnlySpan<T> logSumExp, ReadOnlySpan<T> dy,
        Span<T> dqkv, Span<T> scratch, int batch, int sequence, int heads, int dim, bool accumulate,
        BlockSparseLayout? layout = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                BackwardHead(QkvOfBatch(qkv, b, sequence, dim), LogSumExpOfHead(logSumExp, b, h, sequence, heads),
                    OutputOfBatch(dy, b, sequence, dim), QkvOfBatch(dqkv, b, sequence, dim), scratch, sequence,
                    heads, h, dim, accumulate, layout);
            }
        }
    }

    /// <summary>Scratch elements one (batch, head) pair needs: seq² (forward) or 2·seq² (backward) dense, the gathered rows sparse.</summary>
    public static long ScratchPerPair(int sequence, int headDim, BlockSparseLayout? layout, bool backward)
    {
        long dense = (backward ? 2L : 1L) * sequence * sequence;
        if (layout is null) return dense;
        return backward
            ? SparseAttentionKernels.BackwardScratchLength(sequence, headDim, layout)
            : SparseAttentionKernels.ForwardScratchLength(sequence, headDim, layout);
    }

    public static ReadOnlySpan<T> QkvOfBatch<T>(ReadOnlySpan<T> qkv, int b, int sequence, int dim) =>
        qkv.Slice(b * sequence * 3 * dim, sequence * 3 * dim);

    public static Span<T> QkvOfBatch<T>(Span<T> qkv, int b, int sequence, int dim) =>
        qkv.Slice(b * sequence * 3 * dim, sequence * 3 * dim);

    public static Span<T> OutputOfBatch<T>(Span<T> y, int b, int sequence, int dim) =>
        y.Slice(b * sequence * dim, sequence * dim);

    public static ReadOnlySpan<T> OutputOfBatch<T>(ReadOnlySpan<T> y, int b, int sequence, int dim) =>
        y.Slice(b * sequence * dim, sequence * dim);

    public static Span<T> LogSumExpOfHead<T>(Span<T> logSumExp, int b, int h, int sequence, int heads) =>
        logSumExp.Slice((b * heads + h) * sequence, sequence);

    public static ReadOnlySpan<T> LogSumExpOfHead<T>(ReadOnlySpan<T> logSumExp, int b, int h, int sequence,
        int heads) =>
        logSumExp.Slice((b * heads + h) * sequence, sequence);

    /// <summary>
    /// S = Q·Kᵀ/√hd; P = causal softmax(S), formed in <paramref name="scratch"/> (seq² elements) and dropped after;
    /// Y_h = P·V; lse[t] = ln Σ_{u≤t} exp(S[t, u]), all backward needs to form P again.
    /// </summary>
    public static void ForwardHead<T>(ReadOnlySpan<T> qkvBatch, Span<T> logSumExpHead, Span<T> yBatch,
        Span<T> scratch, int sequence, int heads, int head, int dim, BlockSparseLayout? layout = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (layout is not null)
        {
            SparseAttentionKernels.ForwardHead(qkvBatch, logSumExpHead, yBatch, scratch, sequence, heads, head, dim, layout);
            return;
        }

        int headDim = dim / heads, offset = head * headDim;
        ReadOnlySpan<T> v = qkvBatch[(2 * dim + offset)..];
        Span<T> probabilities = scratch[..(sequence * sequence)];

        Scores(qkvBatch, probabilities, sequence, dim, headDim, offset);
        for (int i = 0; i < sequence; i++)
        {
            Span<T> row = probabilities.Slice(i * sequence, sequence);
            Span<T> visible = row[..(i + 1)];
            T max = TensorPrimitives.Max<T>(visible);
            TensorPrimitives.Subtract(visible, max, visible);
            TensorPrimitives.Exp<T>(visible, visible);
            T sum = TensorPrimitives.Sum<T>(visible);
            TensorPrimitives.Divide(visible, sum, visible);
            row[(i + 1)..].Clear();
            logSumExpHead[i] = max + T.Log(sum);
        }

        Gemm.Multiply(false, false, sequence, headDim, sequence, T.One, probabilities, sequence, v, 3 * dim,
            T.Zero, yBatch[offset..], dim);
    }

    /// <summary>
    /// P = exp(S − lse) from the saved log-sum-exp (the scores again, as in forward); dV = Pᵀ·dY; dP = dY·Vᵀ;
    /// dS = P ⊙ (dP − rowsum(P ⊙ dP)); dQ = dS·K/√hd; dK = dSᵀ·Q/√hd — all written (or added, when accumulating)
    /// straight into this head's columns of dqkv. <paramref name="scratch"/> holds 2·seq² elements (P and dS).
    /// </summary>
    public static void BackwardHead<T>(ReadOnlySpan<T> qkvBatch, ReadOnlySpan<T> logSumExpHead,
        ReadOnlySpan<T> dyBatch, Span<T> dqkvBatch, Span<T> scratch, int sequence, int heads, int head, int dim,
        bool accumulate, BlockSparseLayout? layout = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (layout is not null)
        {
            SparseAttentionKernels.BackwardHead(qkvBatch, logSumExpHead, dyBatch, dqkvBatch, scratch, sequence, heads, head, dim,
                accumulate, layout);
            return;
        }

        int headDim = dim / heads, stride = 3 * dim, offset = head * headDim, square = sequence * sequence;
        ReadOnlySpan<T> q = qkvBatch[offset..], k = qkvBatch[(dim + offset)..], v = qkvBatch[(2 * dim + offset)..];
        ReadOnlySpan<T> dyHead = dyBatch[offset..];
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));
        T beta = accumulate ? T.One : T.Zero;
        Span<T> probabilities = scratch[..square], dScores = scratch.Slice(square, square);

        Scores(qkvBatch, probabilities, sequence, dim, headDim, offset);
        for (int i = 0; i < sequence; i++)
        {
            Span<T> row = probabilities.Slice(i * sequence, sequence);
            Span<T> visible = row[..(i + 1)];
            TensorPrimitives.Subtract(visible, logSumExpHead[i], visible);
            TensorPrimitives.Exp<T>(visible, visible);
            row[(i + 1)..].Clear();
        }

        Gemm.Multiply(true, false, sequence, headDim, sequence, T.One, probabilities, sequence, dyHead, dim,
            beta, dqkvBatch[(2 * dim + offset)..], stride);
        Gemm.Multiply(false, true, sequence, sequence, headDim, T.One, dyHead, dim, v, stride, T.Zero,
            dScores, sequence);
        for (int i = 0; i < sequence; i++)
        {
            // Entries above the diagonal have P = 0, so they drop out of the dot product and of dS.
            ReadOnlySpan<T> p = probabilities.Slice(i * sequence, i + 1);
            Span<T> row = dScores.Slice(i * sequence, sequence);
            Span<T> visible = row[..(i + 1)];
            TensorPrimitives.Subtract(visible, TensorPrimitives.Dot(p, visible), visible);
            TensorPrimitives.Multiply(visible, p, visible);
            row[(i + 1)..].Clear();
        }

        Gemm.Multiply(false, false, sequence, headDim, sequence, scale, dScores, sequence, k, stride, beta,
            dqkvBatch[offset..], stride);
        Gemm.Multiply(true, false, sequence, headDim, sequence, scale, dScores, sequence, q, stride, beta,
            dqkvBatch[(dim + offset)..], stride);
    }

    /// <summary>S = Q_h·K_hᵀ/√headDim for the head whose columns start at <paramref name="offset"/>; forward and backward form it alike.</summary>
    private static void Scores<T>(ReadOnlySpan<T> qkvBatch, Span<T> scores, int sequence, int dim, int headDim, int offset)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int stride = 3 * dim;
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));
        Gemm.Multiply(false, true, sequence, sequence, headDim, scale, qkvBatch[offset..], stride,
            qkvBatch[(dim + offset)..], stride, T.Zero, scores, sequence);
    }
}
