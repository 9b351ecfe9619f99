using System;
using System.Collections.Generic;

namespace Shardwise.Training.ModelCompression;

/// <summary>
/// One compressible module (a Linear or an embedding table: a 2-D "NAME.weight" slot, its bias "NAME.bias" if the
/// layout has one of matching length) and what compression_training does to it. Offsets are into the flat layout.
/// </summary>
/// <param name="Name">The module's name, the weight's slot name without ".weight" (what the patterns search).</param>
/// <param name="QuantizationGroup">Index into weight_quantization's groups; null when not quantized.</param>
/// <param name="SparseDenseRatio">sparse_pruning's dense ratio; null when not sparse-pruned.</param>
/// <param name="RowDenseRatio">row_pruning's dense ratio; null when not row-pruned.</param>
/// <param name="HeadDenseRatio">head_pruning's dense ratio; null when not head-pruned.</param>
/// <param name="Heads">head_pruning's num_heads: the input columns fall into this many equal runs, one per head.</param>
/// <param name="ActivationBits">activation_quantization's bits for this Linear's input; null when not quantized.</param>
public sealed record CompressedModule(
    string Name,
    long WeightOffset,
    int Rows,
    int Columns,
    long? BiasOffset,
    int? QuantizationGroup,
    double? SparseDenseRatio,
    double? RowDenseRatio,
    double? HeadDenseRatio = null,
    int Heads = 0,
    int? ActivationBits = null)
{
    public int WeightLength => Rows * Columns;

    /// <summary>The input columns each head's values feed (head h: columns h·HeadColumns …).</summary>
    public int HeadColumns => Heads == 0 ? 0 : Columns / Heads;

    /// <summary>The dense ratio <paramref name="kind"/> gives this module; null when it does not prune it.</summary>
    public double? DenseRatioOf(PruningKind kind) => kind switch
    {
        PruningKind.Sparse => SparseDenseRatio,
        PruningKind.Row => RowDenseRatio,
        _ => HeadDenseRatio,
    };

    /// <summary>The units <paramref name="kind"/> masks one by one: weights, output rows, or heads.</summary>
    public int UnitsOf(PruningKind kind) => kind switch
    {
        PruningKind.Sparse => WeightLength,
        PruningKind.Row => Rows,
        _ => Heads,
    };

    /// <summary>The unit of <paramref name="kind"/> that weight element <paramref name="element"/> (row-major) belongs to.</summary>
    public int UnitOf(PruningKind kind, int element) => kind switch
    {
        PruningKind.Sparse => element,
        PruningKind.Row => element / Columns,
        _ => element % Columns / HeadColumns,
    };

    /// <summary>The first weight element of unit <paramref name="unit"/>: the weight itself, row r's column 0, head h's first column of row 0.</summary>
    public int FirstElementOf(PruningKind kind, int unit) => kind switch
    {
        PruningKind.Sparse => unit,
        PruningKind.Row => unit * Columns,
        _ => unit * HeadColumns,
    };

    /// <summary>
    /// The parts of this weight's rows inside layout elements [<paramref name="start"/>, <paramref name="end"/>), in
    /// order: the row, the first column there, and where the run starts in the layout and how long it is. A rank's
    /// gradient piece may start and end inside rows.
    /// </summary>
    public IEnumerable<(int Row, int Column, long First, int Count)> RowRuns(long start, long end)
    {
        long from = Math.Max(start, WeightOffset), to = Math.Min(end, WeightOffset + WeightLength);
        for (long rowStart = WeightOffset + (from - WeightOffset) / Columns * Columns; rowStart < to; rowStart += Columns)
        {
            long first = Math.Max(from, rowStart), last = Math.Min(to, rowStart + Columns);
            if (first < last) yield return ((int)((rowStart - WeightOffset) / Columns), (int)(first - rowStart), first, (int)(last - first));
        }
    }
}
