namespace Shardwise.Examples;

/// <summary>
/// The smallest useful model: classify each position of a real-valued sequence with a two-layer GeLU MLP.
/// It shows a real-valued input (with its gradient), primary-constructor layers, and a loss over tokens.
/// </summary>
[Model]
public partial class MlpClassifier
{
    public const int Sequence = 8;
    public const int Features = 16;
    public const int Hidden = 32;
    public const int Classes = 5;

    [Layer] private readonly Linear input = new(Features, Hidden);
    [Layer] private readonly HiddenBlock hidden = new(Hidden);
    [Layer] private readonly Linear classifier = new(Hidden, Classes, bias: false);

    [Forward]
    public Tensor Forward([Shape(Sequence, Features)] Tensor features, [Tokens(Sequence)] Tensor labels)
    {
        var h = Activations.Gelu(input.Forward(features));
        h = hidden.Forward(h);
        return Loss.CrossEntropy(classifier.Forward(h), labels);
    }
}

/// <summary>A residual MLP block whose width comes from a primary-constructor parameter.</summary>
[Layer]
public sealed class HiddenBlock(int width)
{
    [Layer] private readonly LayerNorm norm = new(width);
    [Layer] private readonly Linear mix = new(width, width);

    [Forward]
    public Tensor Forward(Tensor x) => x + Activations.Gelu(mix.Forward(norm.Forward(x)));
}
