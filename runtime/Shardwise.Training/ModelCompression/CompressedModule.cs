namespace Shardwise.Training.ModelCompression;

/// <summary>
/// One compressible module (a Linear or an embedding table: a 2-D "NAME.weight" slot, its bias "NAME.bias" if the
/// layout has one of matching length) and what compression_training does to it. Offsets are into the flat layout.
/// </summary>
/// <param name="Name">The module's name, the weight's slot name without ".weight" (what the patterns search).</param>
/// <param name="QuantizationGroup">Index into weight_quantization's groups; null when not quantized.</param>
/// <param name="SparseDenseRatio">sparse_pruning's dense ratio; null when not sparse-pruned.</param>
/// <param name="RowDenseRatio">row_pruning's dense ratio; null when not row-pruned.</param>
public sealed record CompressedModule(
    string Name,
    long WeightOffset,
    int Rows,
    int Columns,
    long? BiasOffset,
    int? QuantizationGroup,
    double? SparseDenseRatio,
    double? RowDenseRatio)
{
    public int WeightLength => Rows * Columns;
}
