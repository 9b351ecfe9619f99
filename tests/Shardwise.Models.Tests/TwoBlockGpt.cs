namespace Shardwise.Models.Tests;

/// <summary>A two-block GPT with the output head tied to the token embedding, small enough to check every gradient.</summary>
[Model]
public partial class TwoBlockGpt
{
    public const int Vocabulary = 11;
    public const int Context = 6;
    public const int Width = 8;

    [Layer] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer] private readonly GptBlock[] blocks = Layers.Repeat(2, () => new GptBlock(Width, 2));
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

[Layer]
public sealed class GptBlock
{
    [Layer] private readonly LayerNorm norm1;
    [Layer] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm norm2;
    [Layer] private readonly Linear up;
    [Layer] private readonly Linear down;

    public GptBlock(int width, int heads)
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
