namespace Shardwise.Examples;

/// <summary>
/// GPT-2 small (124M) in nanoGPT's shape: 12 pre-norm blocks, width 768, 12 heads, context 1024, learned positions,
/// GeLU MLP 4× wide, biases everywhere, and an output head tied to the token embedding. The vocabulary is GPT-2's
/// 50,257 BPE ids padded to 50,304 (a multiple of 128, as nanoGPT pads it), so <c>--tokenizer gpt2</c> fits. This is
/// the model of the GPU benchmark (docs/benchmarks.md, "GPU: GPT-2 124M"); bench/pytorch/gpt2_bench.py builds the
/// same one in PyTorch.
/// </summary>
[Model]
public partial class Gpt2Small
{
    public const int Vocabulary = 50304;
    public const int Context = 1024;
    public const int Width = 768;
    public const int Heads = 12;
    public const int Depth = 12;

    [Layer] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    [Layer] private readonly Gpt2Block[] blocks = Layers.Repeat(Depth, () => new Gpt2Block(Width, Heads));
    [Layer] private readonly LayerNorm finalNorm = new(Width);

    [Forward]
    public Tensor Forward([Tokens(Context)] Tensor ids, [Tokens(Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        var logits = tokens.Unembed(finalNorm.Forward(x));
        return Loss.CrossEntropy(logits, targets);
    }
}

/// <summary>A pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x)) with a 4× GeLU MLP.</summary>
[Layer]
public sealed class Gpt2Block
{
    [Layer] private readonly LayerNorm attentionNorm;
    [Layer] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm mlpNorm;
    [Layer] private readonly Linear expand;
    [Layer] private readonly Linear contract;

    public Gpt2Block(int width, int heads)
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
