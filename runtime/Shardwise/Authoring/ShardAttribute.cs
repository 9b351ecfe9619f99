namespace Shardwise;

/// <summary>How a layer's weight is split across tensor-parallel ranks.</summary>
public enum ShardKind
{
    /// <summary>Split the output features (Megatron's column-parallel Linear; attention by heads).</summary>
    Column,
    /// <summary>Split the input features (Megatron's row-parallel Linear).</summary>
    Row,
    /// <summary>Split an embedding or a loss by vocabulary.</summary>
    Vocabulary,
}

/// <summary>Asks the partition planner to split this layer across tensor-parallel ranks.</summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Field, Inherited = false)]
public sealed class ShardAttribute : global::System.Attribute
{
    public ShardAttribute(ShardKind kind) => Kind = kind;

    public ShardKind Kind { get; }
}
