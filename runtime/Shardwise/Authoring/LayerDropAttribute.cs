namespace Shardwise;

/// <summary>
/// Progressive layer drop (DeepSpeed's <c>progressive_layer_drop</c>) may skip this layer, or each element of this
/// layer array, in a training micro-batch. Each element's forward must be a chain of residual branches,
/// <c>x = x + f(x)</c>, each branch ending in a Linear: a skipped element passes its input through unchanged and its
/// branches are neither computed nor differentiated; a kept one scales each branch by 1/keep-probability, so that
/// evaluation and sampling run every layer unscaled. Without <c>progressive_layer_drop</c> in the config every layer
/// runs: the attribute costs a copy of each branch's gradient in backward (the branch then cannot share the residual
/// stream's gradient buffer, because a kept branch scales it).
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Field, Inherited = false)]
public sealed class LayerDropAttribute : global::System.Attribute
{
}
