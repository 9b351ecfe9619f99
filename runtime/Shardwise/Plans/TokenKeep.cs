namespace Shardwise.Plans;

/// <summary>
/// One micro-batch's random-LTD: for each <c>[TokenDrop]</c> layer (by its index in the model's <c>TokenDropLayers</c>),
/// how many of each sample's tokens it runs on and which: <c>[batch, kept]</c> packed at the front of a
/// <c>[batch, sequence]</c> array, each sample's row strictly increasing. A layer that keeps every token needs no
/// indices (the program writes its identity on the device): its array may be empty.
/// </summary>
public sealed class TokenKeep
{
    private readonly int[] _keptCounts;
    private readonly int[][] _indices;

    public TokenKeep(int[] keptCounts, int[][] indices)
    {
        global::System.ArgumentNullException.ThrowIfNull(keptCounts);
        global::System.ArgumentNullException.ThrowIfNull(indices);
        if (keptCounts.Length != indices.Length)
            throw new global::System.ArgumentException($"{keptCounts.Length} kept counts but {indices.Length} index arrays.", nameof(indices));
        _keptCounts = keptCounts;
        _indices = indices;
    }

    public int Count => _keptCounts.Length;

    /// <summary>The tokens of each sample layer <paramref name="layer"/> runs on.</summary>
    public int KeptCount(int layer) => _keptCounts[layer];

    /// <summary>Which tokens: <c>[batch, KeptCount]</c> packed at the front of <c>[batch, sequence]</c>; read only where tokens are dropped.</summary>
    public global::System.ReadOnlySpan<int> Indices(int layer) => _indices[layer];
}
