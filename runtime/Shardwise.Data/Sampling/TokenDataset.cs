using System;
using System.Collections.Generic;

namespace Shardwise.Data;

/// <summary>
/// A whole corpus as token ids in memory (tinyshakespeare is 1.1M ints, ~4.5 MB) split like nanoGPT: the first
/// <c>floor(n * trainFraction)</c> tokens train, the rest validate. A contiguous split (rather than shuffled
/// documents) keeps validation text unseen even at the window level, apart from the one boundary.
/// </summary>
public sealed class TokenDataset
{
    public const double DefaultTrainFraction = 0.9;

    private readonly int[] tokens;

    /// <param name="tokens">Token ids, owned by the dataset from now on.</param>
    /// <param name="vocabularySize">Every id must be below this; checked once so a tokenizer/model mismatch fails here.</param>
    /// <param name="trainFraction">In (0, 1]; 1 means no validation split.</param>
    public TokenDataset(int[] tokens, int vocabularySize, double trainFraction = DefaultTrainFraction)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabularySize);
        if (!(trainFraction > 0 && trainFraction <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(trainFraction), trainFraction, "the train fraction must be in (0, 1]");
        }

        for (var i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)vocabularySize)
            {
                throw new ArgumentException($"token {tokens[i]} at position {i} is outside the vocabulary of {vocabularySize}", nameof(tokens));
            }
        }

        this.tokens = tokens;
        VocabularySize = vocabularySize;
        TrainFraction = trainFraction;
        TrainCount = (int)Math.Floor(tokens.Length * trainFraction);
    }

    /// <summary>
    /// Encodes every document of <paramref name="source"/> and joins them with the encoded separator
    /// (<paramref name="separator"/>, or the source's own when null).
    /// </summary>
    public static TokenDataset Build(TextSource source, ITokenizer tokenizer, double trainFraction = DefaultTrainFraction, string? separator = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var separatorIds = tokenizer.Encode(separator ?? source.Separator);
        var all = new List<int>();
        var first = true;
        foreach (var document in source.ReadDocuments())
        {
            if (!first)
            {
                all.AddRange(separatorIds);
            }

            all.AddRange(tokenizer.Encode(document));
            first = false;
        }

        return new TokenDataset(all.ToArray(), tokenizer.VocabularySize, trainFraction);
    }

    public int VocabularySize { get; }

    public double TrainFraction { get; }

    public int Count => tokens.Length;

    public int TrainCount { get; }

    public int ValidationCount => tokens.Length - TrainCount;

    public ReadOnlyMemory<int> Tokens => tokens;

    public ReadOnlyMemory<int> Train => tokens.AsMemory(0, TrainCount);

    public ReadOnlyMemory<int> Validation => tokens.AsMemory(TrainCount);

    public ReadOnlyMemory<int> Get(DataSplit split) => split switch
    {
        DataSplit.Train => Train,
        DataSplit.Validation => Validation,
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, "unknown split"),
    };

    /// <summary>A training sampler over one split; <paramref name="stream"/> separates data-parallel ranks.</summary>
    public BatchSampler CreateSampler(DataSplit split, int batchSize, int contextLength, ulong seed, int stream = 0) =>
        new(Get(split), batchSize, contextLength, seed, stream);

    /// <summary>
    /// A fixed set of <paramref name="count"/> batches for measuring loss: the same seed always gives the same
    /// windows, so validation losses at different steps (or in different runs) are comparable.
    /// </summary>
    public IReadOnlyList<TokenBatch> EvaluationBatches(DataSplit split, int batchSize, int contextLength, int count, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var sampler = CreateSampler(split, batchSize, contextLength, seed);
        var batches = new TokenBatch[count];
        for (var i = 0; i < count; i++)
        {
            batches[i] = new TokenBatch(batchSize, contextLength);
            sampler.NextBatch(batches[i].Inputs, batches[i].Targets);
        }

        return batches;
    }
}
