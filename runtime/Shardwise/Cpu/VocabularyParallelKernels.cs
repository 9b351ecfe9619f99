using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>
/// The embedding and the cross-entropy with the vocabulary split across tensor-parallel ranks (Megatron's
/// vocabulary-parallel layers). A rank holds table rows [first, first + count) and the logits of those tokens; the
/// loss is assembled from per-row statistics summed over the ranks, so no rank ever holds all the logits.
/// </summary>
public static class VocabularyParallelKernels
{
    /// <summary>output[r, :] = table[ids[r] − first, :] when the id is in this rank's range, else zero.</summary>
    public static void EmbeddingForward<T>(ReadOnlySpan<int> ids, ReadOnlySpan<T> table, Span<T> output, int rows, int dim, int first, int count)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++)
        {
            int local = ids[r] - first;
            if ((uint)local < (uint)count) table.Slice(local * dim, dim).CopyTo(output.Slice(r * dim, dim));
            else output.Slice(r * dim, dim).Clear();
        }
    }

    /// <summary>dTable[ids[r] − first, :] += dOutput[r, :] for the ids in this rank's range.</summary>
    public static void EmbeddingBackward<T>(ReadOnlySpan<int> ids, ReadOnlySpan<T> dOutput, Span<T> dTable, int rows, int dim, int first, int count)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++)
        {
            int local = ids[r] - first;
            if ((uint)local >= (uint)count) continue;
            var row = dTable.Slice(local * dim, dim);
            TensorPrimitives.Add(row, dOutput.Slice(r * dim, dim), row);
        }
    }

    /// <summary>rowMax[r] = max over this rank's logits of row r (to be maxed over the ranks).</summary>
    public static void RowMax<T>(ReadOnlySpan<T> logits, Span<T> rowMax, int rows, int vocabulary)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++) rowMax[r] = TensorPrimitives.Max(logits.Slice(r * vocabulary, vocabulary));
    }

    /// <summary>
    /// With the global row maxima: rowSum[r] = Σ exp(logit − max) over this rank's logits, and targetLogit[r] = the
    /// target's logit when this rank holds the target, else zero (both to be summed over the ranks).
    /// </summary>
    public static void Partials<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, ReadOnlySpan<T> rowMax, Span<T> rowSum, Span<T> targetLogit,
        int rows, int vocabulary, int first)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++)
        {
            var row = logits.Slice(r * vocabulary, vocabulary);
            T sum = T.Zero;
            for (int v = 0; v < vocabulary; v++) sum += T.Exp(row[v] - rowMax[r]);
            rowSum[r] = sum;
            int local = targets[r] - first;
            targetLogit[r] = (uint)local < (uint)vocabulary ? row[local] : T.Zero;
        }
    }

    /// <summary>
    /// Mean over the counted rows (<see cref="CrossEntropyKernels.MeanDivisor"/>) of log Σ exp(logit − max) + max −
    /// target logit, from the summed statistics.
    /// </summary>
    public static T Loss<T>(ReadOnlySpan<T> rowMax, ReadOnlySpan<T> rowSum, ReadOnlySpan<T> targetLogit, ReadOnlySpan<int> targets, int rows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T total = T.Zero;
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] != CrossEntropyKernels.IgnoreIndex) total += T.Log(rowSum[r]) + rowMax[r] - targetLogit[r];
        }

        return total / T.CreateChecked(CrossEntropyKernels.MeanDivisor(targets[..rows]));
    }

    /// <summary>
    /// dLogits (=|+=) scale · (exp(logit − max) / sum − onehot(target)) / counted rows, over this rank's logits;
    /// (=|+=) 0 for an ignored row.
    /// </summary>
    public static void Backward<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, ReadOnlySpan<T> rowMax, ReadOnlySpan<T> rowSum, Span<T> dLogits,
        int rows, int vocabulary, int first, T scale, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T factor = scale / T.CreateChecked(CrossEntropyKernels.MeanDivisor(targets[..rows]));
        for (int r = 0; r < rows; r++)
        {
            if (CrossEntropyKernels.IgnoredRow(targets[r], dLogits.Slice(r * vocabulary, vocabulary), accumulate)) continue;
            int local = targets[r] - first;
            for (int v = 0; v < vocabulary; v++)
            {
                T probability = T.Exp(logits[r * vocabulary + v] - rowMax[r]) / rowSum[r];
                T gradient = factor * (v == local ? probability - T.One : probability);
                dLogits[r * vocabulary + v] = accumulate ? dLogits[r * vocabulary + v] + gradient : gradient;
            }
        }
    }
}
