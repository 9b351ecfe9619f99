namespace Shardwise.Models.Tests;

// One small model per built-in layer, each compiled by the generator, so that the gradient check exercises the
// generated backward (not just the backend) for every layer. Sizes are deliberately not powers of two.

[Model]
public partial class LinearModel
{
    [Layer] private readonly Linear linear = new(5, 4);

    [Forward]
    public Tensor Forward([Shape(3, 5)] Tensor x) => linear.Forward(x);
}

[Model]
public partial class LinearNoBiasModel
{
    [Layer] private readonly Linear linear = new(5, 4, bias: false);

    [Forward]
    public Tensor Forward([Shape(3, 5)] Tensor x) => linear.Forward(x);
}

[Model]
public partial class LayerNormModel
{
    [Layer] private readonly LayerNorm norm = new(7);

    [Forward]
    public Tensor Forward([Shape(3, 7)] Tensor x) => norm.Forward(x);
}

[Model]
public partial class GeluModel
{
    [Forward]
    public Tensor Forward([Shape(3, 7)] Tensor x) => Activations.Gelu(x);
}

[Model]
public partial class ResidualModel
{
    [Layer] private readonly Linear linear = new(6, 6);

    [Forward]
    public Tensor Forward([Shape(4, 6)] Tensor x) => x + linear.Forward(x);
}

[Model]
public partial class AttentionModel
{
    [Layer] private readonly CausalSelfAttention attention = new(8, 2);

    [Forward]
    public Tensor Forward([Shape(5, 8)] Tensor x) => attention.Forward(x);
}

[Model]
public partial class EmbeddingModel
{
    [Layer] private readonly Embedding table = new(7, 4);

    [Forward]
    public Tensor Forward([Tokens(5)] Tensor ids) => table.Forward(ids) + table.Forward(ids.Positions());
}

[Model]
public partial class CrossEntropyModel
{
    [Forward]
    public Tensor Forward([Shape(5, 7)] Tensor logits, [Tokens(5)] Tensor targets) => Loss.CrossEntropy(logits, targets);
}
