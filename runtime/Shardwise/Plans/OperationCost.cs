namespace Shardwise.Plans;

/// <summary>
/// One forward operation of a generated program and its static cost per sample, from the shapes alone (the
/// generator's cost model, the one that balances pipeline stages): <see cref="Layer"/> is the layer path the op belongs
/// to (<c>blocks.3.attention</c>; the model's own ops carry its class name), <see cref="Operation"/> its kind.
/// </summary>
public sealed record OperationCost(string Layer, string Operation, long ForwardFlopsPerSample, long BackwardFlopsPerSample)
{
    /// <summary>The index in <paramref name="layers"/> of the layer this op belongs to (the layer itself or one inside it), or −1.</summary>
    public int IndexIn(global::System.Collections.Generic.IReadOnlyList<string> layers)
    {
        for (int i = 0; i < layers.Count; i++)
        {
            string layer = layers[i];
            if (Layer == layer || (Layer.Length > layer.Length && Layer.StartsWith(layer, global::System.StringComparison.Ordinal) && Layer[layer.Length] == '.'))
                return i;
        }
        return -1;
    }

    /// <summary>This op run <paramref name="factor"/> times as often or on that share of its rows: both FLOP counts scaled and rounded.</summary>
    public OperationCost Scaled(double factor) => this with
    {
        ForwardFlopsPerSample = (long)global::System.Math.Round(ForwardFlopsPerSample * factor),
        BackwardFlopsPerSample = (long)global::System.Math.Round(BackwardFlopsPerSample * factor),
    };
}
