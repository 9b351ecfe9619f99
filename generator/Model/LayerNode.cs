namespace Shardwise.Generator.Model;

/// <summary>How tensor parallelism splits a layer (<c>[Shard(ShardKind.…)]</c>); mirrors the runtime's ShardKind.</summary>
internal enum TensorShard
{
    None,
    Column,
    Row,
    Vocabulary,
}

/// <summary>What a node of the layer tree is.</summary>
internal enum LayerKind
{
    Embedding,
    Linear,
    LayerNorm,
    CausalSelfAttention,
    /// <summary>A user [Layer] class with its own [Forward].</summary>
    User,
    /// <summary>A layer array (<c>Layers.Repeat</c>); its children are the elements.</summary>
    Array,
}

/// <summary>
/// One concrete layer instance with every dimension evaluated. <see cref="Path"/> is the dotted parameter prefix
/// (<c>blocks.0.attention</c>); <see cref="Access"/> says how generated code reaches the eager object.
/// </summary>
internal sealed record LayerNode(
    string Path,
    string Field,
    LayerKind Kind,
    string TypeName,
    EquatableArray<int> Dims,
    bool Bias,
    EquatableArray<LayerNode> Children,
    LayerAccess Access,
    LocationInfo? Location)
{
    /// <summary>The tensor split asked for by <c>[Shard]</c> on the field (or on the array holding this element).</summary>
    public TensorShard Shard { get; init; }

    /// <summary>Where the <c>[Shard]</c> attribute is, for diagnostics about the split.</summary>
    public LocationInfo? ShardLocation { get; init; }

    /// <summary><c>[Checkpoint]</c> on the field (or on the array holding this element): recompute in backward.</summary>
    public bool Checkpoint { get; init; }

    /// <summary><c>[Checkpoint(InputsOnHost = true)]</c>: the checkpointed inputs wait in host memory until the recompute.</summary>
    public bool CheckpointInputsOnHost { get; init; }

    /// <summary>
    /// <c>[Checkpoint(PartitionInputs = true)]</c>: tensor ranks each keep a part of the checkpointed inputs until the
    /// recompute (unless <see cref="CheckpointInputsOnHost"/>, which takes precedence; SW0022 says so).
    /// </summary>
    public bool CheckpointPartitionInputs { get; init; }

    /// <summary>Where the <c>[Checkpoint]</c> attribute is, for diagnostics about its options.</summary>
    public LocationInfo? CheckpointLocation { get; init; }

    /// <summary><c>[LayerDrop]</c> on the field (or on the array holding this element): progressive layer drop may skip it.</summary>
    public bool LayerDrop { get; init; }

    /// <summary>Where the <c>[LayerDrop]</c> attribute is, for diagnostics about the layer's form.</summary>
    public LocationInfo? LayerDropLocation { get; init; }

    /// <summary><c>[TokenDrop]</c> on the field (or on the array holding this element): random-LTD may run it on some tokens.</summary>
    public bool TokenDrop { get; init; }

    /// <summary>Where the <c>[TokenDrop]</c> attribute is, for diagnostics about the layer's form.</summary>
    public LocationInfo? TokenDropLocation { get; init; }

    public LayerNode? Child(string field)
    {
        foreach (var child in Children)
        {
            if (child.Field == field) return child;
        }
        return null;
    }
}

/// <summary>
/// How to reach a layer from its parent: a field of the parent's class (possibly private, reached with an
/// UnsafeAccessor when the parent is not the model itself), or an element of an array.
/// </summary>
internal sealed record LayerAccess(string OwnerType, string Field, string FieldType, int ElementIndex);
