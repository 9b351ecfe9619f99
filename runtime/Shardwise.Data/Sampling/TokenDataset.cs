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

    /// <summary>
    /// The target a sampler writes where <see cref="Trainable"/> says the token is not a target: the cross-entropy's
    /// ignore index (Shardwise.Cpu.CrossEntropyKernels.IgnoreIndex, PyTorch's −100), which leaves the position out of the loss.
    /// </summary>
    public const int IgnoredTarget = -100;

    private readonly int[] tokens;
    private readonly bool[]? trainable;

    /// <param name="tokens">Token ids, owned by the dataset from now on.</param>
    /// <param name="vocabularySize">Every id must be below this; checked once so a tokenizer/model mismatch fails here.</param>
    /// <param name="trainFraction">In (0, 1]; 1 means no validation split.</param>
    /// <param name="trainable">
    /// Per token, whether it may be a target (fine-tuning data: the completions, not the prompts); null: every token is.
    /// Owned by the dataset from now on.
    /// </param>
    public TokenDataset(int[] tokens, int vocabularySize, double trainFraction = DefaultTrainFraction, bool[]? trainable = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (trainable is not null && trainable.Length != tokens.Length)
            throw new ArgumentException($"{trainable.Length} trainable flags for {tokens.Length} tokens", nameof(trainable));
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
        this.trainable = trainable;
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
        if (source is PromptCompletionSource examples) return BuildExamples(examples, tokenizer, separatorIds, trainFraction);
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

    /// <summary>
    /// Fine-tuning examples packed back to back, each its prompt, its completion and the separator: only the
    /// completion and the separator are trainable, so a prompt token is never a target (the first completion token
    /// is: the prompt predicts it). Packed, as TRL's packing and Megatron's pretraining are, so no position is padding;
    /// an example can see the end of the one before it, as in any packed stream.
    /// </summary>
    private static TokenDataset BuildExamples(PromptCompletionSource source, ITokenizer tokenizer, int[] separatorIds, double trainFraction)
    {
        var all = new List<int>();
        var trainable = new List<bool>();
        foreach (var (prompt, completion) in source.ReadExamples())
        {
            int[] promptIds = tokenizer.Encode(prompt), completionIds = tokenizer.Encode(completion);
            all.AddRange(promptIds);
            trainable.AddRange(new bool[promptIds.Length]);
            all.AddRange(completionIds);
            all.AddRange(separatorIds);
            for (int i = 0; i < completionIds.Length + separatorIds.Length; i++) trainable.Add(true);
        }

        return new TokenDataset(all.ToArray(), tokenizer.VocabularySize, trainFraction, trainable.ToArray());
    }

    /// <summary>Whether the tokens are fine-tuning data with targets limited to completions.</summary>
    public bool HasUntrainedTokens => trainable is not null;

    /// <summary>How many tokens may be targets (all of them without a trainable mask).</summary>
    public int TrainableCount
    {
        get
        {
            if (trainable is null) return tokens.Length;
            int count = 0;
            foreach (bool flag in trainable) count += flag ? 1 : 0;
            return count;
        }
    }

    /// <summary>Per token of <paramref name="split"/>, whether it may be a target; empty when every token may.</summary>
    public ReadOnlyMemory<bool> Trainable(DataSplit split) => trainable is null
        ? ReadOnlyMemory<bool>.Empty
        : split == DataSplit.Train ? trainable.AsMemory(0, TrainCount) : trainable.AsMemory(TrainCount);

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
        new(Get(split), batchSize, contextLength, seed, stream, Trainable(split));

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
