using System;
using System.Numerics;
using System.Numerics.Tensors;
using Shardwise.Sparsity;

namespace Shardwise.Cpu;

/// <summary>
/// Block-sparse causal attention of one (batch, head) pair, with work in proportion to the tiles the layout keeps.
/// Query rows go in groups of about 64 (whole blocks: small blocks would make products too thin to run well): for each
/// group, the key and value rows of the key blocks any of its query blocks keeps are gathered into contiguous rows, the
/// score, softmax and output products run over those alone, and each row masks the gathered keys its own block does
/// not keep and those after it. Same results as the dense kernels with the dropped scores at −∞
/// (<see cref="AttentionKernels"/>); lse is the same statistic, over the kept keys.
/// </summary>
public static class SparseAttentionKernels
{
    /// <summary>Block rows up to which the lists of gathered blocks live on the stack (no allocation per call).</summary>
    private const int MaxStackBlocks = 1024;

    /// <summary>Query rows per group, at least: products of 64 rows run near the GEMM's full speed on the CPU.</summary>
    private const int GroupRows = 64;

    /// <summary>Query blocks per group.</summary>
    public static int GroupBlocks(BlockSparseLayout layout) => Math.Max(1, GroupRows / layout.Block);

    /// <summary>Scratch elements <see cref="ForwardHead"/> needs: gathered K and V, and one group's scores.</summary>
    public static long ForwardScratchLength(int sequence, int headDim, BlockSparseLayout layout) =>
        (long)sequence * (2 * headDim + GroupRowsOf(layout));

    /// <summary>Scratch elements <see cref="BackwardHead"/> needs: gathered K, V, their gradients, P and dS of one group.</summary>
    public static long BackwardScratchLength(int sequence, int headDim, BlockSparseLayout layout) =>
        (long)sequence * (4 * headDim + 2 * GroupRowsOf(layout));

    /// <summary>Query rows of the largest group: whole blocks, no more than the sequence.</summary>
    private static int GroupRowsOf(BlockSparseLayout layout) => Math.Min(GroupBlocks(layout), layout.Blocks) * layout.Block;

    public static void ForwardHead<T>(ReadOnlySpan<T> qkvBatch, Span<T> logSumExpHead, Span<T> yBatch, Span<T> scratch,
        int sequence, int heads, int head, int dim, BlockSparseLayout layout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headDim = dim / heads, offset = head * headDim, stride = 3 * dim, block = layout.Block, group = GroupBlocks(layout);
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));
        Span<T> keys = scratch[..(sequence * headDim)], values = scratch.Slice(sequence * headDim, sequence * headDim);
        Span<T> scores = scratch.Slice(2 * sequence * headDim, GroupRowsOf(layout) * sequence);
        Span<int> gathered = layout.Blocks <= MaxStackBlocks ? stackalloc int[layout.Blocks] : new int[layout.Blocks];
        for (int firstBlock = 0; firstBlock < layout.Blocks; firstBlock += group)
        {
            int lastBlock = Math.Min(firstBlock + group, layout.Blocks) - 1;
            int count = Gather(qkvBatch, keys, values, layout, head, firstBlock, lastBlock, gathered, dim, offset, headDim);
            int width = count * block, first = firstBlock * block, rows = (lastBlock - firstBlock + 1) * block;
            Span<T> groupScores = scores[..(rows * width)];
            Gemm.Multiply(false, true, rows, width, headDim, scale, qkvBatch[(first * stride + offset)..], stride,
                keys, headDim, T.Zero, groupScores, width);
            for (int i = 0; i < rows; i++)
            {
                Span<T> row = groupScores.Slice(i * width, width);
                MaskDroppedKeys(row, layout, head, first + i, gathered[..count]);
                T max = TensorPrimitives.Max<T>(row);
                TensorPrimitives.Subtract(row, max, row);
                TensorPrimitives.Exp<T>(row, row);
                T sum = TensorPrimitives.Sum<T>(row);
                TensorPrimitives.Divide(row, sum, row);
                logSumExpHead[first + i] = max + T.Log(sum);
            }

            Gemm.Multiply(false, false, rows, headDim, width, T.One, groupScores, width, values, headDim, T.Zero,
                yBatch[(first * dim + offset)..], dim);
        }
    }

    public static void BackwardHead<T>(ReadOnlySpan<T> qkvBatch, ReadOnlySpan<T> logSumExpHead, ReadOnlySpan<T> dyBatch,
        Span<T> dqkvBatch, Span<T> scratch, int sequence, int heads, int head, int dim, bool accumulate, BlockSparseLayout layout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headDim = dim / heads, offset = head * headDim, stride = 3 * dim, block = layout.Block, group = GroupBlocks(layout);
        int n = sequence * headDim, groupScores = GroupRowsOf(layout) * sequence;
        T scale = T.One / T.Sqrt(T.CreateChecked(headDim));
        Span<T> keys = scratch[..n], values = scratch.Slice(n, n), dKeys = scratch.Slice(2 * n, n), dValues = scratch.Slice(3 * n, n);
        Span<T> probabilities = scratch.Slice(4 * n, groupScores), dScores = scratch.Slice(4 * n + groupScores, groupScores);
        Span<int> gathered = layout.Blocks <= MaxStackBlocks ? stackalloc int[layout.Blocks] : new int[layout.Blocks];

        // dK and dV are summed over query groups into the head's rows: start them at zero unless accumulating.
        if (!accumulate)
        {
            for (int t = 0; t < sequence; t++)
            {
                dqkvBatch.Slice(t * stride + dim + offset, headDim).Clear();
                dqkvBatch.Slice(t * stride + 2 * dim + offset, headDim).Clear();
            }
        }

        for (int firstBlock = 0; firstBlock < layout.Blocks; firstBlock += group)
        {
            int lastBlock = Math.Min(firstBlock + group, layout.Blocks) - 1;
            int count = Gather(qkvBatch, keys, values, layout, head, firstBlock, lastBlock, gathered, dim, offset, headDim);
            int width = count * block, first = firstBlock * block, rows = (lastBlock - firstBlock + 1) * block;
            ReadOnlySpan<T> q = qkvBatch[(first * stride + offset)..], dy = dyBatch[(first * dim + offset)..];
            Span<T> p = probabilities[..(rows * width)], ds = dScores[..(rows * width)];

            // P = exp(S − lse) over the gathered keys, 0 for the dropped ones and those after the query.
            Gemm.Multiply(false, true, rows, width, headDim, scale, q, stride, keys, headDim, T.Zero, p, width);
            for (int i = 0; i < rows; i++)
            {
                Span<T> row = p.Slice(i * width, width);
                MaskDroppedKeys(row, layout, head, first + i, gathered[..count]);
                TensorPrimitives.Subtract(row, logSumExpHead[first + i], row);
                TensorPrimitives.Exp<T>(row, row);
            }

            // dV' = Pᵀ·dY; dP = dY·V'ᵀ; dS = P ⊙ (dP − rowsum(P ⊙ dP)); dQ = dS·K'/√hd; dK' = dSᵀ·Q/√hd.
            Gemm.Multiply(true, false, width, headDim, rows, T.One, p, width, dy, dim, T.Zero, dValues, headDim);
            Gemm.Multiply(false, true, rows, width, headDim, T.One, dy, dim, values, headDim, T.Zero, ds, width);
            for (int i = 0; i < rows; i++)
            {
                ReadOnlySpan<T> pRow = p.Slice(i * width, width);
                Span<T> row = ds.Slice(i * width, width);
                TensorPrimitives.Subtract(row, TensorPrimitives.Dot(pRow, row), row);
                TensorPrimitives.Multiply(row, pRow, row);
            }

            Gemm.Multiply(false, false, rows, headDim, width, scale, ds, width, keys, headDim, accumulate ? T.One : T.Zero,
                dqkvBatch[(first * stride + offset)..], stride);
            Gemm.Multiply(true, false, width, headDim, rows, scale, ds, width, q, stride, T.Zero, dKeys, headDim);
            Scatter(dqkvBatch, dKeys, dValues, gathered[..count], block, dim, offset, headDim);
        }
    }

    /// <summary>
    /// The key blocks at or before <paramref name="lastBlock"/> that any query block of the group keeps, ascending, into
    /// <paramref name="gathered"/>; their K and V rows copied into <paramref name="keys"/> and <paramref name="values"/>,
    /// headDim apart. Returns how many.
    /// </summary>
    private static int Gather<T>(ReadOnlySpan<T> qkvBatch, Span<T> keys, Span<T> values, BlockSparseLayout layout, int head,
        int firstBlock, int lastBlock, Span<int> gathered, int dim, int offset, int headDim)
    {
        int stride = 3 * dim, block = layout.Block, count = 0;
        for (int keyBlock = 0; keyBlock <= lastBlock; keyBlock++)
        {
            bool kept = false;
            for (int queryBlock = Math.Max(firstBlock, keyBlock); queryBlock <= lastBlock && !kept; queryBlock++)
                kept = layout.Keeps(head, queryBlock, keyBlock);
            if (!kept) continue;
            for (int j = 0; j < block; j++)
            {
                int token = keyBlock * block + j, at = (count * block + j) * headDim;
                qkvBatch.Slice(token * stride + dim + offset, headDim).CopyTo(keys.Slice(at, headDim));
                qkvBatch.Slice(token * stride + 2 * dim + offset, headDim).CopyTo(values.Slice(at, headDim));
            }

            gathered[count++] = keyBlock;
        }

        return count;
    }

    /// <summary>Adds the gathered keys' gradients back into their rows of dK and dV.</summary>
    private static void Scatter<T>(Span<T> dqkvBatch, ReadOnlySpan<T> dKeys, ReadOnlySpan<T> dValues, ReadOnlySpan<int> gathered,
        int block, int dim, int offset, int headDim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int stride = 3 * dim;
        for (int c = 0; c < gathered.Length; c++)
        {
            for (int j = 0; j < block; j++)
            {
                int token = gathered[c] * block + j, at = (c * block + j) * headDim;
                Span<T> dk = dqkvBatch.Slice(token * stride + dim + offset, headDim), dv = dqkvBatch.Slice(token * stride + 2 * dim + offset, headDim);
                TensorPrimitives.Add(dk, dKeys.Slice(at, headDim), dk);
                TensorPrimitives.Add(dv, dValues.Slice(at, headDim), dv);
            }
        }
    }

    /// <summary>
    /// Query <paramref name="query"/>'s row over the gathered blocks: −∞ for the blocks its own block does not keep, for
    /// the blocks after it, and for the keys after it in its own block.
    /// </summary>
    private static void MaskDroppedKeys<T>(Span<T> row, BlockSparseLayout layout, int head, int query, ReadOnlySpan<int> gathered)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int block = layout.Block, queryBlock = query / block;
        for (int c = 0; c < gathered.Length; c++)
        {
            int keyBlock = gathered[c];
            Span<T> segment = row.Slice(c * block, block);
            if (keyBlock > queryBlock || !layout.Keeps(head, queryBlock, keyBlock)) segment.Fill(T.NegativeInfinity);
            else if (keyBlock == queryBlock) segment[(query - keyBlock * block + 1)..].Fill(T.NegativeInfinity);
        }
    }
}
