namespace Shardwise.Trainer.Tests;

// Two small GPTs for training with and without activation checkpointing; identical except for [Checkpoint].

/// <summary>Two blocks of width 32 over the addition task's 65-symbol vocabulary, context 16.</summary>
[Model]
public partial class SmallGpt
{
    public const int Vocabulary = 65;
    public const int Context = 16;
    public const int Width = 32;

    [Layer] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer] private readonly SmallBlock[] blocks = Layers.Repeat(2, () => new SmallBlock(Width, 2));
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

/// <summary><see cref="SmallGpt"/> with both blocks checkpointed.</summary>
[Model]
public partial class CheckpointedSmallGpt
{
    [Layer] private readonly Embedding tokens = new(SmallGpt.Vocabulary, SmallGpt.Width);
    [Layer] private readonly Embedding positions = new(SmallGpt.Context, SmallGpt.Width);
    [Layer, Checkpoint] private readonly SmallBlock[] blocks = Layers.Repeat(2, () => new SmallBlock(SmallGpt.Width, 2));
    [Layer] private readonly LayerNorm finalNorm = new(SmallGpt.Width);

    [Forward]
    public Tensor Forward([Tokens(SmallGpt.Context)] Tensor ids, [Tokens(SmallGpt.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}

/// <summary><see cref="CheckpointedSmallGpt"/> with the blocks' inputs kept in host memory until their recompute.</summary>
[Model]
public partial class HostCheckpointedSmallGpt
{
    [Layer] private readonly Embedding tokens = new(SmallGpt.Vocabulary, SmallGpt.Width);
    [Layer] private readonly Embedding positions = new(SmallGpt.Context, SmallGpt.Width);
    [Layer, Checkpoint(InputsOnHost = true)] private readonly SmallBlock[] blocks = Layers.Repeat(2, () => new SmallBlock(SmallGpt.Width, 2));
    [Layer] private readonly LayerNorm finalNorm = new(SmallGpt.Width);

    [Forward]
    public Tensor Forward([Tokens(SmallGpt.Context)] Tensor ids, [Tokens(SmallGpt.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}

/// <summary>A pre-norm transformer block.</summary>
[Layer]
public sealed class SmallBlock
{
    [Layer] private readonly LayerNorm attentionNorm;
    [Layer] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm mlpNorm;
    [Layer] private readonly Linear expand;
    [Layer] private readonly Linear contract;

    public SmallBlock(int width, int heads)
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
