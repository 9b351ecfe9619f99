using Shardwise.Cpu;

namespace Shardwise;

/// <summary>A learned vector per token; <see cref="Unembed"/> reuses the table as a tied output head.</summary>
public sealed class Embedding
{
    public Embedding(int vocabulary, int dim)
    {
        EagerShapes.RequirePositive(vocabulary, nameof(vocabulary));
        EagerShapes.RequirePositive(dim, nameof(dim));
        Vocabulary = vocabulary;
        Dim = dim;
        Weight = new Parameter(vocabulary, dim);
    }

    public int Vocabulary { get; }

    public int Dim { get; }

    /// <summary>The table, <c>[vocabulary, dim]</c>.</summary>
    public Parameter Weight { get; }

    /// <summary>Looks up each token: ids <c>[..]</c> → <c>[.., dim]</c>.</summary>
    public Tensor Forward(Tensor ids)
    {
        int[] tokens = ids.TokenIndices(nameof(Embedding));
        var output = Tensor.Zeros(EagerShapes.Appended(ids.Shape, Dim));
        EmbeddingKernels.Forward<float>(tokens, Weight.Data, output.Data, tokens.Length, Dim);
        return output;
    }

    /// <summary>Logits x · Weightᵀ: <c>[.., dim]</c> → <c>[.., vocabulary]</c>.</summary>
    public Tensor Unembed(Tensor x)
    {
        int rows = EagerShapes.RowsOver(x, Dim, nameof(Unembed));
        var logits = Tensor.Zeros(EagerShapes.WithLast(x.Shape, Vocabulary));
        LinearKernels.Forward<float>(x.Data, Weight.Data, [], logits.Data, rows, Dim, Vocabulary);
        return logits;
    }
}
