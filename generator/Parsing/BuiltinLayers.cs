using Shardwise.Generator.Model;

namespace Shardwise.Generator.Parsing;

/// <summary>The runtime's built-in layers and the constructor parameters that carry their dimensions.</summary>
internal static class BuiltinLayers
{
    public static bool TryGetKind(string metadataName, out LayerKind kind)
    {
        switch (metadataName)
        {
            case KnownNames.Embedding: kind = LayerKind.Embedding; return true;
            case KnownNames.Linear: kind = LayerKind.Linear; return true;
            case KnownNames.LayerNorm: kind = LayerKind.LayerNorm; return true;
            case KnownNames.CausalSelfAttention: kind = LayerKind.CausalSelfAttention; return true;
            default: kind = default; return false;
        }
    }

    /// <summary>Constructor parameter names whose values become <see cref="LayerNode.Dims"/>, in order.</summary>
    public static string[] DimensionParameters(LayerKind kind) => kind switch
    {
        LayerKind.Embedding => new[] { "vocabulary", "dim" },
        LayerKind.Linear => new[] { "inFeatures", "outFeatures" },
        LayerKind.LayerNorm => new[] { "dim" },
        LayerKind.CausalSelfAttention => new[] { "dim", "heads" },
        _ => new string[0],
    };

    /// <summary>The constructor parameter that switches the bias on or off, if the layer has one.</summary>
    public static string? BiasParameter(LayerKind kind)
        => kind is LayerKind.Linear or LayerKind.CausalSelfAttention ? "bias" : null;
}
