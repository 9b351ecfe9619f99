namespace Shardwise.Models.Tests;

/// <summary>Four blocks in two pipeline stages; the output head is tied to the embedding across the stages.</summary>
[Model(Pipeline = 2)]
public partial class PipelineGpt
{
    public const int Vocabulary = 11;
    public const int Context = 6;
    public const int Width = 8;

    [Layer] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer] private readonly GptBlock[] blocks = Layers.Repeat(4, () => new GptBlock(Width, 2));
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
