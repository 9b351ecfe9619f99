namespace Shardwise;

/// <summary>
/// Activation checkpointing for this layer (or every element of a layer array): forward keeps only the layer's input,
/// and backward recomputes the layer's forward just before differentiating it. Trades one extra forward for the
/// memory of every activation inside the layer; the plan report shows the saving.
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Field, Inherited = false)]
public sealed class CheckpointAttribute : global::System.Attribute
{
}
