namespace Shardwise;

/// <summary>
/// Random-LTD (DeepSpeed's random layerwise token dropping, <c>data_efficiency.data_routing.random_ltd</c>) may run
/// this layer, or each element of this layer array, on a random subset of each sample's tokens while training: the
/// kept tokens are gathered, the layer runs on them alone (its attention sees only them, in order), and the tokens it
/// skipped pass through unchanged. The layer's forward takes one <c>[batch, sequence, width]</c> tensor and returns one
/// of the same shape, and every op in it works per position except causal attention. Without <c>random_ltd</c> in the
/// config, and in evaluation, every token runs: the attribute then costs a copy of the layer's input and output per
/// step.
/// </summary>
[global::System.AttributeUsage(global::System.AttributeTargets.Field, Inherited = false)]
public sealed class TokenDropAttribute : global::System.Attribute
{
}
