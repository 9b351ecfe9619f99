using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>
/// Causal multi-head self-attention core. qkv is <c>[batch, seq, 3·dim]</c> with q, k, v side by side, each split
/// into heads of dim/heads; one head is addressed in place through the leading dimension 3·dim, so no head is
/// ever copied out. The work unit is one (batch, head) pair, which callers may run in parallel: pairs write
/// disjoint parts of y and dqkv.
/// </summary>
public static class AttentionKernels
{
    /// <summary>All (batch, head) pairs in order; see <see cref="ForwardHead"/>.</summary>
    public static void Forward<T>(ReadOnlySpan<T> qkv, Span<T> y, Span<T> probabilities,
        int batch, int sequence, int heads, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                ForwardHead(QkvOfBatch(qkv, b, sequence, dim), ProbabilitiesOfHead(probabilities, b, h, sequence, heads),
                    OutputOfBatch(y, b, sequence, dim), sequence, heads, h, dim);
            }
        }
    }

    /// <summary>All (batch, head) pairs in order; <paramref name="scratch"/> holds at least seq² elements.</summary>
    public static void Backward<T>(ReadOnlySpan<T> qkv, ReadOnlySpan<T> probabilities, ReadOnlySpan<T> dy,
        Span<T> dqkv, Span<T> scratch, int batch, int sequence, int heads, int dim, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                BackwardHead(QkvOfBatch(qkv, b, sequence, dim),
                    ProbabilitiesOfHead(probabilities, b, h, sequence, heads), OutputOfBatch(dy, b, sequence, dim),
                    QkvOfBatch(dqkv, b, sequence, dim), scratch, sequence, heads, h, dim, accumulate);
            }
        }
    }

    public static ReadOnlySpan<T> QkvOfBatch<T>(ReadOnlySpan<T> qkv, int b, int sequence, int dim) =>
        qkv.Slice(b * sequence * 3 * dim, sequence * 3 * dim);

    public static Span<T> QkvOfBatch<T>(Span<T> qkv, int b, int sequence, int dim) =>
        qkv.Slice(b * sequence * 3 * dim, sequence * 3 * dim);

    public static Span<T> OutputOfBatch<T>(Span<T> y, int b, int sequence, int dim) =>
        y.Slice(b * sequence * dim, sequence * dim);

    public static ReadOnlySpan<T> OutputOfBatch<T>(ReadOnlySpan<T> y, int b, int sequence, int dim) =>
        y.Slice(b * sequence * dim, sequence * dim);

    public static Span<T> ProbabilitiesOfHead<T>(Span<T> probabilities, int b, int h, int sequence, int heads) =>
        probabilities.Slice((b * heads + h) * sequence * sequence, sequence * sequence);

    public static ReadOnlySpan<T> ProbabilitiesOfHead<T>(ReadOnlySpan<T> probabilities, int b, int h, int sequence,
        int heads) =>
        probabilities.Slice((b * heads + h) * sequence * sequence, sequence * sequence);

    /// <summary>P = causal softmax(Q·Kᵀ/√hd); Y_h = P·V for one batch element's head.</summary>
    public static void ForwardHead<T>(ReadOnlySpan<T> qkvBatch, Span<T> probabilitiesHead, Span<T> yBatch,
        int sequence, int heads, int head, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headDim = dim / heads, stride = 3 * dim, offset = head * headDim;
        ReadOnlySpan<T> q = qkvBatch[offset..], k = qkvBatch[(dim + offset)..], v = qkvBatch[(2 * dim + offset)..];
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));

        Gemm.Multiply(false, true, sequence, sequence, headDim, scale, q, stride, k, stride, T.Zero,
            probabilitiesHead, sequence);
        for (int i = 0; i < sequence; i++)
        {
            Span<T> row = probabilitiesHead.Slice(i * sequence, sequence);
            Span<T> visible = row[..(i + 1)];
            TensorPrimitives.Subtract(visible, TensorPrimitives.Max<T>(visible), visible);
            TensorPrimitives.Exp<T>(visible, visible);
            TensorPrimitives.Divide(visible, TensorPrimitives.Sum<T>(visible), visible);
            row[(i + 1)..].Clear();
        }

        Gemm.Multiply(false, false, sequence, headDim, sequence, T.One, probabilitiesHead, sequence, v, stride,
            T.Zero, yBatch[offset..], dim);
    }

    /// <summary>
    /// dV = Pᵀ·dY; dP = dY·Vᵀ; dS = P ⊙ (dP − rowsum(P ⊙ dP)); dQ = dS·K/√hd; dK = dSᵀ·Q/√hd — all written
    /// (or added, when accumulating) straight into this head's columns of dqkv.
    /// </summary>
    public static void BackwardHead<T>(ReadOnlySpan<T> qkvBatch, ReadOnlySpan<T> probabilitiesHead,
        ReadOnlySpan<T> dyBatch, Span<T> dqkvBatch, Span<T> scratch, int sequence, int heads, int head, int dim,
        bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headDim = dim / heads, stride = 3 * dim, offset = head * headDim;
        ReadOnlySpan<T> q = qkvBatch[offset..], k = qkvBatch[(dim + offset)..], v = qkvBatch[(2 * dim + offset)..];
        ReadOnlySpan<T> dyHead = dyBatch[offset..];
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));
        T beta = accumulate ? T.One : T.Zero;
        Span<T> dScores = scratch[..(sequence * sequence)];

        Gemm.Multiply(true, false, sequence, headDim, sequence, T.One, probabilitiesHead, sequence, dyHead, dim,
            beta, dqkvBatch[(2 * dim + offset)..], stride);
        Gemm.Multiply(false, true, sequence, sequence, headDim, T.One, dyHead, dim, v, stride, T.Zero,
            dScores, sequence);
        for (int i = 0; i < sequence; i++)
        {
            // Entries above the diagonal have P = 0, so they drop out of the dot product and of dS.
            ReadOnlySpan<T> p = probabilitiesHead.Slice(i * sequence, i + 1);
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
}
