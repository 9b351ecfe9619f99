namespace Shardwise.Models.Tests;

/// <summary>
/// <see cref="TwoBlockGpt"/> with three <c>[LayerDrop]</c> blocks: the same constants and block class, so that with its
/// middle block skipped it is a TwoBlockGpt whose second block is this one's third.
/// </summary>
[Model]
public partial class DroppableGpt
{
    [Layer] private readonly Embedding tokens = new(TwoBlockGpt.Vocabulary, TwoBlockGpt.Width);
    [Layer] private readonly Embedding positions = new(TwoBlockGpt.Context, TwoBlockGpt.Width);
    [Layer, LayerDrop] private readonly GptBlock[] blocks = Layers.Repeat(3, () => new GptBlock(TwoBlockGpt.Width, 2));
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
/// Three droppable blocks written branch-first (<c>f(x) + x</c>) and checkpointed: a skipped block's recompute is
/// skipped too, and the branch is the add's first operand.
/// </summary>
[Model]
public partial class CheckpointedDroppableGpt
{
    [Layer] private readonly Embedding tokens = new(TwoBlockGpt.Vocabulary, TwoBlockGpt.Width);
    [Layer] private readonly Embedding positions = new(TwoBlockGpt.Context, TwoBlockGpt.Width);
    [Layer, LayerDrop, Checkpoint] private readonly BranchFirstBlock[] blocks = Layers.Repeat(3, () => new BranchFirstBlock(TwoBlockGpt.Width, 2));
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

/// <summary>A pre-norm block with each residual add written branch first.</summary>
[Layer]
public sealed class BranchFirstBlock
{
    [Layer] private readonly LayerNorm norm1;
    [Layer] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm norm2;
    [Layer] private readonly Linear up;
    [Layer] private readonly Linear down;

    public BranchFirstBlock(int width, int heads)
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
        x = attention.Forward(norm1.Forward(x)) + x;
        return down.Forward(Activations.Gelu(up.Forward(norm2.Forward(x)))) + x;
    }
}
