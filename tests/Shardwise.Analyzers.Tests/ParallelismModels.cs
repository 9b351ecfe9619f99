namespace Shardwise.Analyzers.Tests;

/// <summary>Small models for the parallelism diagnostics (SW0010-SW0013); the attribute text is marked for the location.</summary>
internal static class ParallelismModels
{
    /// <summary>
    /// Four pipeline layers: input (with the GeLU after it), hidden, classifier and the loss; only the first three
    /// have parameters.
    /// </summary>
    public static string Classifier(string attribute) => $$"""
        using Shardwise;

        [{{attribute}}]
        public partial class Classifier
        {
            [Layer] private readonly Linear input = new(16, 32);
            [Layer] private readonly Residual hidden = new(32);
            [Layer] private readonly Linear classifier = new(32, 4);

            [Forward]
            public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
            {
                var h = Activations.Gelu(input.Forward(features));
                h = hidden.Forward(h);
                return Loss.CrossEntropy(classifier.Forward(h), labels);
            }
        }

        [Layer]
        public sealed class Residual(int width)
        {
            [Layer] private readonly LayerNorm norm = new(width);
            [Layer] private readonly Linear mix = new(width, width);

            [Forward]
            public Tensor Forward(Tensor x) => x + Activations.Gelu(mix.Forward(norm.Forward(x)));
        }
        """;

    /// <summary>An attention encoder whose sharded sizes are the arguments.</summary>
    public static string Encoder(string attribute, int vocabulary, int width, int heads, int classes) => $$"""
        using Shardwise;

        [{{attribute}}]
        public partial class Encoder
        {
            [Layer] private readonly Embedding tokens = new({{vocabulary}}, {{width}});
            [Layer] private readonly CausalSelfAttention attention = new({{width}}, {{heads}});
            [Layer] private readonly Linear head = new({{width}}, {{classes}});

            [Forward]
            public Tensor Forward([Tokens(16)] Tensor ids, [Tokens(16)] Tensor labels)
                => Loss.CrossEntropy(head.Forward(attention.Forward(tokens.Forward(ids))), labels);
        }
        """;
}
