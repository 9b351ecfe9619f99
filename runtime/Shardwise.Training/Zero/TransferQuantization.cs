using Shardwise.Precision;

namespace Shardwise.Training.Zero;

/// <summary>
/// Which of ZeRO-3's transfers ZeRO++ quantizes: <see cref="Weights"/> (zero_quantized_weights, qwZ: the parameter
/// gathers of forward and backward) and <see cref="Gradients"/> (zero_quantized_gradients, qgZ: the gradient
/// reduction). <see cref="Storage"/> is what gathered weights are rounded to after decoding. With
/// <see cref="RanksPerNode"/> above 1 (hpZ's groups) the gradient reduction is hierarchical: within the node first.
/// </summary>
public sealed record TransferQuantization(bool Weights, bool Gradients, StorageType Storage, int RanksPerNode = 1)
{
    /// <summary>Null when the config quantizes nothing.</summary>
    public static TransferQuantization? From(Config.ZeroOptimizationConfig zero, StorageType storage)
        => zero.Stage == 3 && (zero.QuantizedWeights || zero.QuantizedGradients)
            ? new TransferQuantization(zero.QuantizedWeights, zero.QuantizedGradients, storage, zero.HpzPartitionSize)
            : null;
}
