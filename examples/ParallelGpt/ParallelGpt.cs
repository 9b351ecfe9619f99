namespace Shardwise.Examples;

/// <summary>
/// TinyGpt's model planned for 2 pipeline stages × 2 tensor-parallel ranks: Megatron-split blocks (attention by heads,
/// the MLP's first Linear by columns and its second by rows), a vocabulary-split embedding tied to the output head on the
/// other stage, and checkpointed blocks whose inputs each tensor rank keeps in halves until the recompute (DeepSpeed's
/// partition_activations). Trained on d · 4 ranks under mpirun (d data replicas, any ZeRO stage within each data
/// group); one process trains the whole program.
/// </summary>
[Model(Pipeline = 2, Tensor = 2)]
public partial class ParallelGpt
{
    public const int Vocabulary = 66; // the character vocabulary (65), rounded up to split evenly over 2 tensor ranks
    public const int Context = 64;
    public const int Width = 128;
    public const int Heads = 4;
    public const int Depth = 4;

    [Layer, Shard(ShardKind.Vocabulary)] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer, Checkpoint(PartitionInputs = true)] private readonly ParallelBlock[] blocks = Layers.Repeat(Depth, () => new ParallelBlock(Width, Heads));
    [Layer] private readonly LayerNorm finalNorm = new(Width);

    [Forward]
    public Tensor Forward([Tokens(Context)] Tensor ids, [Tokens(Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}

/// <summary>A pre-norm block split over the tensor ranks: each keeps half of the heads and half of the MLP's hidden units.</summary>
[Layer]
public sealed class ParallelBlock
{
    [Layer] private readonly LayerNorm attentionNorm;
    [Layer, Shard(ShardKind.Column)] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm mlpNorm;
    [Layer, Shard(ShardKind.Column)] private readonly Linear expand;
    [Layer, Shard(ShardKind.Row)] private readonly Linear contract;

    public ParallelBlock(int width, int heads)
    {
        attentionNorm = new LayerNorm(width);
        attention = new CausalSelfAttention(width, heads);
        mlpNorm = new LayerNorm(width);
        expand = new Linear(width, 4 * width);
        contract = new Linear(4 * width, width);
    }

    [Forward]
    public Tensor Forward(Tensor x)
    {
        x = x + attention.Forward(attentionNorm.Forward(x));
        return x + contract.Forward(Activations.Gelu(expand.Forward(mlpNorm.Forward(x))));
    }
}
