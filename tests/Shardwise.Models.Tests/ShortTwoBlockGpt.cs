namespace Shardwise.Models.Tests;

/// <summary>
/// <see cref="TwoBlockGpt"/> with a shorter context: the same layers and parameter names, a position table of
/// <see cref="Context"/> rows. What a sequence-length curriculum truncates TwoBlockGpt's sequences to
/// (CurriculumMaskingTests).
/// </summary>
[Model]
public partial class ShortTwoBlockGpt
{
    public const int Context = 4;

    [Layer] private readonly Embedding tokens = new(TwoBlockGpt.Vocabulary, TwoBlockGpt.Width);
    [Layer] private readonly Embedding positions = new(Context, TwoBlockGpt.Width);
    [Layer] private readonly GptBlock[] blocks = Layers.Repeat(2, () => new GptBlock(TwoBlockGpt.Width, 2));
    [Layer] private readonly LayerNorm finalNorm = new(TwoBlockGpt.Width);

    [Forward]
    public Tensor Forward([Tokens(Context)] Tensor ids, [Tokens(Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}
