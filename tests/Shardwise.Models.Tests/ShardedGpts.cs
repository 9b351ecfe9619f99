namespace Shardwise.Models.Tests;

/// <summary>
/// A pre-norm block split Megatron's way: attention by heads (qkv column-parallel, projection row-parallel), the MLP
/// column- then row-parallel. One all-reduce per sub-layer in forward (g) and one in backward (f).
/// </summary>
[Layer]
public sealed class ShardedBlock
{
    [Layer] private readonly LayerNorm norm1;
    [Layer, Shard(ShardKind.Column)] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm norm2;
    [Layer, Shard(ShardKind.Column)] private readonly Linear up;
    [Layer, Shard(ShardKind.Row)] private readonly Linear down;

    public ShardedBlock(int width, int heads)
    {
        norm1 = new LayerNorm(width);
        attention = new CausalSelfAttention(width, heads);
        norm2 = new LayerNorm(width);
        up = new Linear(width, 3 * width);
        down = new Linear(3 * width, width);
    }

    [Forward]
    public Tensor Forward(Tensor x)
    {
        x = x + attention.Forward(norm1.Forward(x));
        return x + down.Forward(Activations.Gelu(up.Forward(norm2.Forward(x))));
    }
}

/// <summary>Two sharded blocks over two tensor-parallel ranks; the embedding, the tied head and the loss split by vocabulary.</summary>
[Model(Tensor = 2)]
public partial class TensorGpt
{
    public const int Vocabulary = 12;
    public const int Context = 6;
    public const int Width = 8;

    [Layer, Shard(ShardKind.Vocabulary)] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer] private readonly ShardedBlock[] blocks = Layers.Repeat(2, () => new ShardedBlock(Width, 2));
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

/// <summary>
/// Four sharded blocks in two pipeline stages over two tensor-parallel ranks (4 ranks per replica); the
/// vocabulary-split embedding and its tied head sit on different stages.
/// </summary>
[Model(Pipeline = 2, Tensor = 2)]
public partial class HybridGpt
{
    public const int Vocabulary = 12;
    public const int Context = 6;
    public const int Width = 8;

    [Layer, Shard(ShardKind.Vocabulary)] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer] private readonly ShardedBlock[] blocks = Layers.Repeat(4, () => new ShardedBlock(Width, 2));
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

/// <summary><see cref="HybridGpt"/> with every block checkpointed: each stage recomputes its blocks in backward.</summary>
[Model(Pipeline = 2, Tensor = 2)]
public partial class CheckpointedHybridGpt
{
    public const int Vocabulary = 12;
    public const int Context = 6;
    public const int Width = 8;

    [Layer, Shard(ShardKind.Vocabulary)] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer, Checkpoint] private readonly ShardedBlock[] blocks = Layers.Repeat(4, () => new ShardedBlock(Width, 2));
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

/// <summary>
/// <see cref="CheckpointedHybridGpt"/> with the blocks' inputs kept in host memory until their recompute: each stage
/// stashes them per micro-batch in flight (one host store per activation window).
/// </summary>
[Model(Pipeline = 2, Tensor = 2)]
public partial class HostCheckpointedHybridGpt
{
    public const int Vocabulary = 12;
    public const int Context = 6;
    public const int Width = 8;

    [Layer, Shard(ShardKind.Vocabulary)] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer, Checkpoint(InputsOnHost = true)] private readonly ShardedBlock[] blocks = Layers.Repeat(4, () => new ShardedBlock(Width, 2));
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

/// <summary>
/// <see cref="CheckpointedHybridGpt"/> with the blocks' inputs kept in parts over the two tensor ranks until their
/// recompute (DeepSpeed's partition_activations): each rank holds half of every block input between forward and
/// backward, and the ranks all-gather it back before the block's recompute.
/// </summary>
[Model(Pipeline = 2, Tensor = 2)]
public partial class PartitionedCheckpointHybridGpt
{
    public const int Vocabulary = 12;
    public const int Context = 6;
    public const int Width = 8;

    [Layer, Shard(ShardKind.Vocabulary)] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer, Checkpoint(PartitionInputs = true)] private readonly ShardedBlock[] blocks = Layers.Repeat(4, () => new ShardedBlock(Width, 2));
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

/// <summary>
/// <see cref="HybridGpt"/> with <c>[LayerDrop]</c> and <c>[TokenDrop]</c> blocks: progressive layer drop and random-LTD
/// across two pipeline stages and two tensor-parallel ranks, where each branch ends in the row-parallel sum (TensorSum)
/// and every rank must skip the same blocks and drop the same tokens.
/// </summary>
[Model(Pipeline = 2, Tensor = 2)]
public partial class DroppableHybridGpt
{
    public const int Vocabulary = 12;
    public const int Context = 6;
    public const int Width = 8;

    [Layer, Shard(ShardKind.Vocabulary)] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer, LayerDrop, TokenDrop] private readonly ShardedBlock[] blocks = Layers.Repeat(4, () => new ShardedBlock(Width, 2));
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
