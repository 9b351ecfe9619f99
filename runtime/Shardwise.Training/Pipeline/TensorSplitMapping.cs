using System;
using Shardwise.Plans;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// Where tensor rank r's piece of a parameter lies in the whole tensor, as pure functions on row-major data.
/// Rows in G groups: the R rows form G groups of R/G; each group is cut in t parts of R/(G·t) rows and rank r keeps
/// part r of every group, concatenated (a fused qkv keeps whole heads of q, k and v). Columns of an [R, C] tensor:
/// rank r keeps columns [r·C/t, (r+1)·C/t) of every row. Replicated: every rank keeps the whole tensor.
/// </summary>
public static class TensorSplitMapping
{
    /// <summary>The shape of one rank's piece of a tensor of <paramref name="shape"/>.</summary>
    public static int[] LocalShape(int[] shape, TensorSplit split, int tensor)
    {
        Check(shape, split, tensor);
        var local = (int[])shape.Clone();
        if (split.Axis == SplitAxis.Rows) local[0] /= tensor;
        else if (split.Axis == SplitAxis.Columns) local[1] /= tensor;
        return local;
    }

    /// <summary>Copies rank <paramref name="rank"/>'s piece of <paramref name="full"/> into <paramref name="local"/>.</summary>
    public static void Extract(ReadOnlySpan<float> full, int[] shape, TensorSplit split, int rank, int tensor, Span<float> local)
    {
        Check(shape, split, tensor, rank, full.Length, local.Length);
        foreach (var (fullStart, localStart, length) in Runs(shape, split, rank, tensor))
            full.Slice(fullStart, length).CopyTo(local.Slice(localStart, length));
    }

    /// <summary>Writes rank <paramref name="rank"/>'s piece <paramref name="local"/> back into its place in <paramref name="full"/>.</summary>
    public static void Insert(ReadOnlySpan<float> local, int[] shape, TensorSplit split, int rank, int tensor, Span<float> full)
    {
        Check(shape, split, tensor, rank, full.Length, local.Length);
        foreach (var (fullStart, localStart, length) in Runs(shape, split, rank, tensor))
            local.Slice(localStart, length).CopyTo(full.Slice(fullStart, length));
    }

    /// <summary>The contiguous runs a piece consists of: (offset in the whole tensor, offset in the piece, length).</summary>
    private static System.Collections.Generic.IEnumerable<(int Full, int Local, int Length)> Runs(int[] shape, TensorSplit split, int rank, int tensor)
    {
        int rows = shape[0], columns = Elements(shape) / Math.Max(1, rows);
        switch (split.Axis)
        {
            case SplitAxis.None:
                yield return (0, 0, Elements(shape));
                break;
            case SplitAxis.Rows:
                int groupRows = rows / split.Groups, partRows = groupRows / tensor;
                for (int g = 0; g < split.Groups; g++)
                    yield return ((g * groupRows + rank * partRows) * columns, g * partRows * columns, partRows * columns);
                break;
            case SplitAxis.Columns:
                int part = columns / tensor;
                for (int row = 0; row < rows; row++) yield return (row * columns + rank * part, row * part, part);
                break;
        }
    }

    private static int Elements(int[] shape)
    {
        int count = 1;
        foreach (int dimension in shape) count *= dimension;
        return count;
    }

    private static void Check(int[] shape, TensorSplit split, int tensor, int rank = 0, int? fullLength = null, int? localLength = null)
    {
        if (tensor < 1) throw new ArgumentOutOfRangeException(nameof(tensor), tensor, "the tensor degree is at least 1");
        if (rank < 0 || rank >= tensor) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"tensor ranks are 0..{tensor - 1}");
        if (shape.Length == 0) throw new ArgumentException("a split tensor has at least one dimension", nameof(shape));
        string what = $"a [{string.Join(", ", shape)}] tensor split {split} over {tensor} ranks";
        switch (split.Axis)
        {
            case SplitAxis.Rows when split.Groups < 1 || shape[0] % (split.Groups * tensor) != 0:
                throw new ArgumentException($"{what}: {shape[0]} rows are not divisible by {split.Groups} groups × {tensor} ranks");
            case SplitAxis.Columns when shape.Length != 2:
                throw new ArgumentException($"{what}: a column split needs a 2-D [rows, columns] tensor");
            case SplitAxis.Columns when shape[1] % tensor != 0:
                throw new ArgumentException($"{what}: {shape[1]} columns are not divisible by {tensor} ranks");
        }
        int elements = Elements(shape);
        if (fullLength is { } f && f != elements)
            throw new ArgumentException($"{what}: the whole tensor has {elements} elements, got {f}");
        int localElements = split.Axis == SplitAxis.None ? elements : elements / tensor;
        if (localLength is { } l && l != localElements)
            throw new ArgumentException($"{what}: one rank's piece has {localElements} elements, got {l}");
    }
}
