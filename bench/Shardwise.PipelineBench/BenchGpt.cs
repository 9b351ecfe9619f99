namespace Shardwise.PipelineBench;

/// <summary>
/// The shape both benchmark models share: TinyGpt's architecture (examples/TinyGpt) with 8 blocks instead of 4, so
/// that each of 4 stages still holds two whole blocks of real work.
/// </summary>
public static class BenchGptShape
{
    public const int Vocabulary = 65;
    public const int Context = 64;
    public const int Width = 128;
    public const int Heads = 4;
    public const int Depth = 8;
}

/// <summary>The benchmark GPT planned for two pipeline stages (its whole program is the one-process baseline).</summary>
[Model(Pipeline = 2)]
public partial class TwoStageGpt
{
    [Layer] private readonly Embedding tokens = new(BenchGptShape.Vocabulary, BenchGptShape.Width);
    [Layer] private readonly Embedding positions = new(BenchGptShape.Context, BenchGptShape.Width);
    [Layer] private readonly BenchBlock[] blocks = Layers.Repeat(BenchGptShape.Depth, () => new BenchBlock(BenchGptShape.Width, BenchGptShape.Heads));
    [Layer] private readonly LayerNorm finalNorm = new(BenchGptShape.Width);

    [Forward]
    public Tensor Forward([Tokens(BenchGptShape.Context)] Tensor ids, [Tokens(BenchGptShape.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}

/// <summary>The same GPT as <see cref="TwoStageGpt"/>, planned for four pipeline stages.</summary>
[Model(Pipeline = 4)]
public partial class FourStageGpt
{
    [Layer] private readonly Embedding tokens = new(BenchGptShape.Vocabulary, BenchGptShape.Width);
    [Layer] private readonly Embedding positions = new(BenchGptShape.Context, BenchGptShape.Width);
    [Layer] private readonly BenchBlock[] blocks = Layers.Repeat(BenchGptShape.Depth, () => new BenchBlock(BenchGptShape.Width, BenchGptShape.Heads));
    [Layer] private readonly LayerNorm finalNorm = new(BenchGptShape.Width);

    [Forward]
    public Tensor Forward([Tokens(BenchGptShape.Context)] Tensor ids, [Tokens(BenchGptShape.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}

/// <summary>TinyGpt's pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x)).</summary>
[Layer]
public sealed class BenchBlock
{
    [Layer] private readonly LayerNorm attentionNorm;
    [Layer] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm mlpNorm;
    [Layer] private readonly Linear expand;
    [Layer] private readonly Linear contract;

    public BenchBlock(int width, int heads)
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
