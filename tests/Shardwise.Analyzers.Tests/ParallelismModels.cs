namespace Shardwise.Analyzers.Tests;

/// <summary>Small models for the parallelism and plan diagnostics (SW0010-SW0018); the attribute text is marked for the location.</summary>
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

    /// <summary>
    /// An attention encoder whose sharded sizes are the arguments; <paramref name="shards"/> are the attribute lists
    /// (e.g. <c>[Shard(ShardKind.Vocabulary)]</c>, or empty) on its tokens, attention and head fields.
    /// </summary>
    public static string Encoder(string attribute, int vocabulary, int width, int heads, int classes, params string[] shards) => $$"""
        using Shardwise;

        [{{attribute}}]
        public partial class Encoder
        {
            {{At(shards, 0)}}[Layer] private readonly Embedding tokens = new({{vocabulary}}, {{width}});
            {{At(shards, 1)}}[Layer] private readonly CausalSelfAttention attention = new({{width}}, {{heads}});
            {{At(shards, 2)}}[Layer] private readonly Linear head = new({{width}}, {{classes}});

            [Forward]
            public Tensor Forward([Tokens(16)] Tensor ids, [Tokens(16)] Tensor labels)
                => Loss.CrossEntropy(head.Forward(attention.Forward(tokens.Forward(ids))), labels);
        }
        """;

    /// <summary>The Megatron split of <see cref="Encoder"/>: vocabulary-parallel embedding, attention by heads, column-parallel head.</summary>
    public static readonly string[] SplitEncoder = { "[Shard(ShardKind.Vocabulary)]", "[Shard(ShardKind.Column)]", "[Shard(ShardKind.Column)]" };

    private static string At(string[] shards, int index) => index < shards.Length && shards[index].Length > 0 ? shards[index] + " " : "";
}
