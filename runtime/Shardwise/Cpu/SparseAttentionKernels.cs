using System;
using System.Numerics;
using System.Numerics.Tensors;
using Shardwise.Sparsity;

namespace Shardwise.Cpu;

/// <summary>
/// Block-sparse causal attention of one (batch, head) pair, with work in proportion to the tiles the layout keeps: for
/// each query block, the key and value rows of its kept key blocks are gathered into contiguous rows, and the score,
/// softmax and output products run over those alone. A query attends to the keys of its kept blocks that are not
/// after it (only the diagonal block needs the causal mask). Same layouts and results as the dense kernels with the
/// dropped scores at −∞ (<see cref="AttentionKernels"/>); lse is the same statistic, over the kept keys.
/// </summary>
public static class SparseAttentionKernels
{
    /// <summary>Block rows up to which the list of kept blocks lives on the stack (no allocation per call).</summary>
    private const int MaxStackBlocks = 1024;

    /// <summary>Scratch elements <see cref="ForwardHead"/> needs: gathered K and V, and one block row of scores.</summary>
    public static long ForwardScratchLength(int sequence, int headDim, BlockSparseLayout layout) =>
        (long)sequence * (2 * headDim + layout.Block);

    /// <summary>Scratch elements <see cref="BackwardHead"/> needs: gathered K, V, their gradients, P and dS of one block row.</summary>
    public static long BackwardScratchLength(int sequence, int headDim, BlockSparseLayout layout) =>
        (long)sequence * (4 * headDim + 2 * layout.Block);

    public static void ForwardHead<T>(ReadOnlySpan<T> qkvBatch, Span<T> logSumExpHead, Span<T> yBatch, Span<T> scratch,
        int sequence, int heads, int head, int dim, BlockSparseLayout layout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headDim = dim / heads, offset = head * headDim, stride = 3 * dim, block = layout.Block;
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));
        Span<T> keys = scratch[..(sequence * headDim)], values = scratch.Slice(sequence * headDim, sequence * headDim);
        Span<T> scores = scratch.Slice(2 * sequence * headDim, block * sequence);
        Span<int> keptBlocks = layout.Blocks <= MaxStackBlocks ? stackalloc int[layout.Blocks] : new int[layout.Blocks];
        for (int queryBlock = 0; queryBlock < layout.Blocks; queryBlock++)
        {
            int count = Gather(qkvBatch, keys, values, layout, head, queryBlock, keptBlocks, dim, offset, headDim);
            int width = count * block, first = queryBlock * block;
            Span<T> rowScores = scores[..(block * width)];
            Gemm.Multiply(false, true, block, width, headDim, scale, qkvBatch[(first * stride + offset)..], stride,
                keys, headDim, T.Zero, rowScores, width);
            for (int i = 0; i < block; i++)
            {
                Span<T> row = rowScores.Slice(i * width, width);
                MaskFutureKeys(row, keptBlocks[count - 1] == queryBlock, i, block);
                T max = TensorPrimitives.Max<T>(row);
                TensorPrimitives.Subtract(row, max, row);
                TensorPrimitives.Exp<T>(row, row);
                T sum = TensorPrimitives.Sum<T>(row);
                TensorPrimitives.Divide(row, sum, row);
                logSumExpHead[first + i] = max + T.Log(sum);
            }

            Gemm.Multiply(false, false, block, headDim, width, T.One, rowScores, width, values, headDim, T.Zero,
                yBatch[(first * dim + offset)..], dim);
        }
    }

    public static void BackwardHead<T>(ReadOnlySpan<T> qkvBatch, ReadOnlySpan<T> logSumExpHead, ReadOnlySpan<T> dyBatch,
        Span<T> dqkvBatch, Span<T> scratch, int sequence, int heads, int head, int dim, bool accumulate, BlockSparseLayout layout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headDim = dim / heads, offset = head * headDim, stride = 3 * dim, block = layout.Block, n = sequence * headDim;
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));
        Span<T> keys = scratch[..n], values = scratch.Slice(n, n), dKeys = scratch.Slice(2 * n, n), dValues = scratch.Slice(3 * n, n);
        Span<T> probabilities = scratch.Slice(4 * n, block * sequence), dScores = scratch.Slice(4 * n + block * sequence, block * sequence);
        Span<int> keptBlocks = layout.Blocks <= MaxStackBlocks ? stackalloc int[layout.Blocks] : new int[layout.Blocks];

        // dK and dV are summed over query blocks into the head's rows: start them at zero unless accumulating.
        if (!accumulate)
        {
            for (int t = 0; t < sequence; t++)
            {
                dqkvBatch.Slice(t * stride + dim + offset, headDim).Clear();
                dqkvBatch.Slice(t * stride + 2 * dim + offset, headDim).Clear();
            }
        }

        for (int queryBlock = 0; queryBlock < layout.Blocks; queryBlock++)
        {
            int count = Gather(qkvBatch, keys, values, layout, head, queryBlock, keptBlocks, dim, offset, headDim);
            int width = count * block, first = queryBlock * block;
            ReadOnlySpan<T> q = qkvBatch[(first * stride + offset)..], dy = dyBatch[(first * dim + offset)..];
            Span<T> p = probabilities[..(block * width)], ds = dScores[..(block * width)];

            // P = exp(S − lse) over the gathered keys, 0 for keys after the query.
            Gemm.Multiply(false, true, block, width, headDim, scale, q, stride, keys, headDim, T.Zero, p, width);
            for (int i = 0; i < block; i++)
            {
                Span<T> row = p.Slice(i * width, width);
                MaskFutureKeys(row, keptBlocks[count - 1] == queryBlock, i, block);
                TensorPrimitives.Subtract(row, logSumExpHead[first + i], row);
                TensorPrimitives.Exp<T>(row, row);
            }

            // dV' = Pᵀ·dY; dP = dY·V'ᵀ; dS = P ⊙ (dP − rowsum(P ⊙ dP)); dQ = dS·K'/√hd; dK' = dSᵀ·Q/√hd.
            Gemm.Multiply(true, false, width, headDim, block, T.One, p, width, dy, dim, T.Zero, dValues, headDim);
            Gemm.Multiply(false, true, block, width, headDim, T.One, dy, dim, values, headDim, T.Zero, ds, width);
            for (int i = 0; i < block; i++)
            {
                ReadOnlySpan<T> pRow = p.Slice(i * width, width);
                Span<T> row = ds.Slice(i * width, width);
                TensorPrimitives.Subtract(row, TensorPrimitives.Dot(pRow, row), row);
                TensorPrimitives.Multiply(row, pRow, row);
            }

            Gemm.Multiply(false, false, block, headDim, width, scale, ds, width, keys, headDim, accumulate ? T.One : T.Zero,
                dqkvBatch[(first * stride + offset)..], stride);
            Gemm.Multiply(true, false, width, headDim, block, scale, ds, width, q, stride, T.Zero, dKeys, headDim);
            Scatter(dqkvBatch, dKeys, dValues, keptBlocks, count, block, dim, offset, headDim);
        }
    }

    /// <summary>
    /// The kept key blocks at or before <paramref name="queryBlock"/>, ascending, into <paramref name="keptBlocks"/>; their
    /// K and V rows copied into <paramref name="keys"/> and <paramref name="values"/>, headDim apart. Returns how many.
    /// </summary>
    private static int Gather<T>(ReadOnlySpan<T> qkvBatch, Span<T> keys, Span<T> values, BlockSparseLayout layout, int head,
        int queryBlock, Span<int> keptBlocks, int dim, int offset, int headDim)
    {
        int stride = 3 * dim, block = layout.Block, count = 0;
        for (int keyBlock = 0; keyBlock <= queryBlock; keyBlock++)
        {
            if (!layout.Keeps(head, queryBlock, keyBlock)) continue;
            for (int j = 0; j < block; j++)
            {
                int token = keyBlock * block + j, at = (count * block + j) * headDim;
                qkvBatch.Slice(token * stride + dim + offset, headDim).CopyTo(keys.Slice(at, headDim));
                qkvBatch.Slice(token * stride + 2 * dim + offset, headDim).CopyTo(values.Slice(at, headDim));
            }

            keptBlocks[count++] = keyBlock;
        }

        return count;
    }

    /// <summary>Adds the gathered keys' gradients back into their rows of dK and dV.</summary>
    private static void Scatter<T>(Span<T> dqkvBatch, ReadOnlySpan<T> dKeys, ReadOnlySpan<T> dValues, ReadOnlySpan<int> keptBlocks, int count,
        int block, int dim, int offset, int headDim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int stride = 3 * dim;
        for (int c = 0; c < count; c++)
        {
            for (int j = 0; j < block; j++)
            {
                int token = keptBlocks[c] * block + j, at = (c * block + j) * headDim;
                Span<T> dk = dqkvBatch.Slice(token * stride + dim + offset, headDim), dv = dqkvBatch.Slice(token * stride + 2 * dim + offset, headDim);
                TensorPrimitives.Add(dk, dKeys.Slice(at, headDim), dk);
                TensorPrimitives.Add(dv, dValues.Slice(at, headDim), dv);
            }
        }
    }

    /// <summary>
    /// Row i of a query block: when the diagonal block is kept (it is then the last gathered), its keys after query i
    /// get −∞; earlier blocks are wholly before the query.
    /// </summary>
    private static void MaskFutureKeys<T>(Span<T> row, bool diagonalKept, int i, int block)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (diagonalKept) row[(row.Length - block + i + 1)..].Fill(T.NegativeInfinity);
    }
}
