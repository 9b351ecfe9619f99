namespace Shardwise.Examples;

/// <summary>
/// A small GPT in the shape of nanoGPT's shakespeare-char configuration: 4 blocks, width 128, 4 heads, context 64,
/// pre-norm residual blocks, GeLU MLP, and an output head tied to the token embedding.
/// </summary>
[Model]
public partial class TinyGpt
{
    public const int Vocabulary = 65;
    public const int Context = 64;
    public const int Width = 128;
    public const int Heads = 4;
    public const int Depth = 4;

    [Layer] private readonly Embedding tokens = new(Vocabulary, Width);
    [Layer] private readonly Embedding positions = new(Context, Width);
    // [LayerDrop]: progressive_layer_drop in the config may skip blocks while training (each is x + f(x) twice).
    // [TokenDrop]: random_ltd in the config may run blocks on some of each sequence's tokens while training.
    [Layer, LayerDrop, TokenDrop] private readonly Block[] blocks = Layers.Repeat(Depth, () => new Block(Width, Heads));
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

/// <summary>A pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x)).</summary>
[Layer]
public sealed class Block
{
    [Layer] private readonly LayerNorm attentionNorm;
    [Layer] private readonly CausalSelfAttention attention;
    [Layer] private readonly LayerNorm mlpNorm;
    [Layer] private readonly Linear expand;
    [Layer] private readonly Linear contract;

    public Block(int width, int heads)
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
