namespace Shardwise.Plans;

/// <summary>
/// One micro-batch's progressive layer drop: for each <c>[LayerDrop]</c> layer (by its index in the model's
/// <c>DroppableLayers</c>), whether it runs, and the factor a kept layer's branches are scaled by (1/keep-probability,
/// so that the expected output is the full layer's and evaluation runs every layer unscaled).
/// </summary>
public sealed class LayerKeep
{
    private readonly bool[] _kept;
    private readonly double[] _scales;

    public LayerKeep(bool[] kept, double[] scales)
    {
        global::System.ArgumentNullException.ThrowIfNull(kept);
        global::System.ArgumentNullException.ThrowIfNull(scales);
        if (kept.Length != scales.Length)
            throw new global::System.ArgumentException($"{kept.Length} keep decisions but {scales.Length} scales.", nameof(scales));
        _kept = kept;
        _scales = scales;
    }

    public int Count => _kept.Length;

    /// <summary>Whether layer <paramref name="layer"/> runs in this micro-batch.</summary>
    public bool Kept(int layer) => _kept[layer];

    /// <summary>The factor layer <paramref name="layer"/>'s branches are scaled by while it runs.</summary>
    public double Scale(int layer) => _scales[layer];

    /// <summary>How many layers this micro-batch skips.</summary>
    public int Skipped
    {
        get
        {
            int skipped = 0;
            foreach (bool kept in _kept) if (!kept) skipped++;
            return skipped;
        }
    }
}
