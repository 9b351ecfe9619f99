namespace Shardwise.Models.Tests;

// Models with [Checkpoint] on their blocks, each with a twin that differs only by the attribute: checkpointing must
// change the memory plan and nothing else.

/// <summary><see cref="TwoBlockGpt"/> with both blocks checkpointed.</summary>
[Model]
public partial class CheckpointedTwoBlockGpt
{
    [Layer] private readonly Embedding tokens = new(TwoBlockGpt.Vocabulary, TwoBlockGpt.Width);
    [Layer] private readonly Embedding positions = new(TwoBlockGpt.Context, TwoBlockGpt.Width);
    [Layer, Checkpoint] private readonly GptBlock[] blocks = Layers.Repeat(2, () => new GptBlock(TwoBlockGpt.Width, 2));
    [Layer] private readonly LayerNorm finalNorm = new(TwoBlockGpt.Width);

    [Forward]
    public Tensor Forward([Tokens(TwoBlockGpt.Context)] Tensor ids, [Tokens(TwoBlockGpt.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}

/// <summary>
/// <see cref="TwoBlockGpt"/> with both blocks checkpointed and their inputs kept in host memory between forward and
/// backward (DeepSpeed's cpu_checkpointing).
/// </summary>
[Model]
public partial class HostCheckpointedTwoBlockGpt
{
    [Layer] private readonly Embedding tokens = new(TwoBlockGpt.Vocabulary, TwoBlockGpt.Width);
    [Layer] private readonly Embedding positions = new(TwoBlockGpt.Context, TwoBlockGpt.Width);
    [Layer, Checkpoint(InputsOnHost = true)] private readonly GptBlock[] blocks = Layers.Repeat(2, () => new GptBlock(TwoBlockGpt.Width, 2));
    [Layer] private readonly LayerNorm finalNorm = new(TwoBlockGpt.Width);

    [Forward]
    public Tensor Forward([Tokens(TwoBlockGpt.Context)] Tensor ids, [Tokens(TwoBlockGpt.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}

/// <summary>
/// Three residual MLP blocks of width 16, so that every activation is exactly one 16-element alignment unit and the
/// arena can be worked out by hand (see CheckpointingTests.ArenaMatchesTheHandComputedPeak).
/// </summary>
[Model]
public partial class ResidualMlp
{
    [Layer] private readonly MlpBlock[] blocks = Layers.Repeat(3, () => new MlpBlock(16));

    [Forward]
    public Tensor Forward([Shape(1, 16)] Tensor x)
    {
        foreach (var block in blocks)
            x = block.Forward(x);
        return x;
    }
}

/// <summary><see cref="ResidualMlp"/> with every block checkpointed.</summary>
[Model]
public partial class CheckpointedResidualMlp
{
    [Layer, Checkpoint] private readonly MlpBlock[] blocks = Layers.Repeat(3, () => new MlpBlock(16));

    [Forward]
    public Tensor Forward([Shape(1, 16)] Tensor x)
    {
        foreach (var block in blocks)
            x = block.Forward(x);
        return x;
    }
}

/// <summary><see cref="CheckpointedResidualMlp"/> with the blocks' inputs kept in host memory until their recompute.</summary>
[Model]
public partial class HostCheckpointedResidualMlp
{
    [Layer, Checkpoint(InputsOnHost = true)] private readonly MlpBlock[] blocks = Layers.Repeat(3, () => new MlpBlock(16));

    [Forward]
    public Tensor Forward([Shape(1, 16)] Tensor x)
    {
        foreach (var block in blocks)
            x = block.Forward(x);
        return x;
    }
}

/// <summary>x + down(gelu(up(x))): four ops, the last (the residual add) writing the block's output.</summary>
[Layer]
public sealed class MlpBlock
{
    [Layer] private readonly Linear up;
    [Layer] private readonly Linear down;

    public MlpBlock(int width)
    {
        up = new Linear(width, width);
        down = new Linear(width, width);
    }

    [Forward]
    public Tensor Forward(Tensor x) => x + down.Forward(Activations.Gelu(up.Forward(x)));
}
