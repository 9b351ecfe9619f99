namespace Shardwise.Models.Tests;

/// <summary><see cref="TwoBlockGpt"/>'s sizes with three <c>[TokenDrop]</c> blocks: random-LTD may run each on some tokens.</summary>
[Model]
public partial class TokenDropGpt
{
    [Layer] private readonly Embedding tokens = new(TwoBlockGpt.Vocabulary, TwoBlockGpt.Width);
    [Layer] private readonly Embedding positions = new(TwoBlockGpt.Context, TwoBlockGpt.Width);
    [Layer, TokenDrop] private readonly GptBlock[] blocks = Layers.Repeat(3, () => new GptBlock(TwoBlockGpt.Width, 2));
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

/// <summary>Checkpointed <c>[TokenDrop]</c> blocks that progressive layer drop may also skip, written branch first.</summary>
[Model]
public partial class CheckpointedTokenDropGpt
{
    [Layer] private readonly Embedding tokens = new(TwoBlockGpt.Vocabulary, TwoBlockGpt.Width);
    [Layer] private readonly Embedding positions = new(TwoBlockGpt.Context, TwoBlockGpt.Width);
    [Layer, LayerDrop, TokenDrop, Checkpoint] private readonly BranchFirstBlock[] blocks = Layers.Repeat(3, () => new BranchFirstBlock(TwoBlockGpt.Width, 2));
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
/// Two <c>[TokenDrop]</c> blocks over a real-valued sequence, returning the hidden states: what the eager reference
/// (each block run on the kept rows alone) is held against.
/// </summary>
[Model]
public partial class TokenDropStack
{
    [Layer, TokenDrop] private readonly GptBlock[] blocks = Layers.Repeat(2, () => new GptBlock(TwoBlockGpt.Width, 2));

    [Forward]
    public Tensor Forward([Shape(TwoBlockGpt.Context, TwoBlockGpt.Width)] Tensor x)
    {
        foreach (var block in blocks)
            x = block.Forward(x);
        return x;
    }

    /// <summary>The eager block, for the reference.</summary>
    public GptBlock Block(int index) => blocks[index];
}
