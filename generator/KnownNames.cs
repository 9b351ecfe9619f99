namespace Shardwise.Generator;

/// <summary>Metadata names of the runtime types the generator recognizes.</summary>
internal static class KnownNames
{
    public const string ModelAttribute = "Shardwise.ModelAttribute";
    public const string LayerAttribute = "Shardwise.LayerAttribute";
    public const string ShardAttribute = "Shardwise.ShardAttribute";
    public const string CheckpointAttribute = "Shardwise.CheckpointAttribute";
    public const string LayerDropAttribute = "Shardwise.LayerDropAttribute";
    public const string TokenDropAttribute = "Shardwise.TokenDropAttribute";
    public const string ForwardAttribute = "Shardwise.ForwardAttribute";
    public const string TokensAttribute = "Shardwise.TokensAttribute";
    public const string ShapeAttribute = "Shardwise.ShapeAttribute";
    public const string Tensor = "Shardwise.Tensor";
    public const string Layers = "Shardwise.Layers";

    public const string Embedding = "Shardwise.Embedding";
    public const string Linear = "Shardwise.Linear";
    public const string LayerNorm = "Shardwise.LayerNorm";
    public const string CausalSelfAttention = "Shardwise.CausalSelfAttention";
    public const string Activations = "Shardwise.Activations";
    public const string Loss = "Shardwise.Loss";
    public const string TrainerCli = "Shardwise.Training.Cli.TrainerCli";
}
