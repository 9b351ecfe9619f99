using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>Table lookup by token index.</summary>
public static class EmbeddingKernels
{
    /// <summary>output[r, :] = table[ids[r], :].</summary>
    public static void Forward<T>(ReadOnlySpan<int> ids, ReadOnlySpan<T> table, Span<T> output, int rows, int dim)
        where T : unmanaged
    {
        int vocabulary = dim == 0 ? 0 : table.Length / dim;
        for (int r = 0; r < rows; r++)
        {
            int id = CheckedId(ids[r], r, vocabulary);
            table.Slice(id * dim, dim).CopyTo(output.Slice(r * dim, dim));
        }
    }

    /// <summary>dTable[ids[r], :] += dOutput[r, :]; serial because repeated ids add into the same row.</summary>
    public static void Backward<T>(ReadOnlySpan<int> ids, ReadOnlySpan<T> dOutput, Span<T> dTable, int rows, int dim)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int vocabulary = dim == 0 ? 0 : dTable.Length / dim;
        for (int r = 0; r < rows; r++)
        {
            Span<T> tableRow = dTable.Slice(CheckedId(ids[r], r, vocabulary) * dim, dim);
            TensorPrimitives.Add(tableRow, dOutput.Slice(r * dim, dim), tableRow);
        }
    }

    private static int CheckedId(int id, int row, int vocabulary)
    {
        if ((uint)id >= (uint)vocabulary)
        {
            throw new ArgumentOutOfRangeException(nameof(id),
                $"Token id {id} at row {row} is outside the embedding table's vocabulary [0, {vocabulary}).");
        }

        return id;
    }
}
