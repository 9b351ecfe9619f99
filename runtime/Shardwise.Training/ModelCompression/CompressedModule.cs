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
}
