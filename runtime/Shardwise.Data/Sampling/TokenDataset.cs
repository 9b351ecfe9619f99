using System;
using System.Collections.Generic;
using System.Linq;

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
    private readonly int[]? exampleStarts;

    /// <param name="tokens">Token ids, owned by the dataset from now on.</param>
    /// <param name="vocabularySize">Every id must be below this; checked once so a tokenizer/model mismatch fails here.</param>
    /// <param name="trainFraction">In (0, 1]; 1 means no validation split.</param>
    /// <param name="trainable">
    /// Per token, whether it may be a target (fine-tuning data: the completions, not the prompts); null: every token is.
    /// Owned by the dataset from now on.
    /// </param>
    /// <param name="exampleStarts">
    /// Where each example begins, ascending from 0 (fine-tuning data drawn one example per row); null: the samplers
    /// draw windows at any offset.
    /// </param>
    public TokenDataset(int[] tokens, int vocabularySize, double trainFraction = DefaultTrainFraction, bool[]? trainable = null,
        int[]? exampleStarts = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (exampleStarts is not null && !IsAscendingFromZero(exampleStarts, tokens.Length))
            throw new ArgumentException("example starts must ascend from 0 and lie inside the tokens", nameof(exampleStarts));
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
        this.exampleStarts = exampleStarts;
        VocabularySize = vocabularySize;
        TrainFraction = trainFraction;
        TrainCount = (int)Math.Floor(tokens.Length * trainFraction);
    }

    /// <summary>
    /// Encodes every document of <paramref name="source"/> and joins them with the encoded separator
    /// (<paramref name="separator"/>, or the source's own when null).
    /// </summary>
    /// <param name="packExamples">
    /// For prompt/completion data: true draws windows at any offset of the packed stream (TRL's packing), false (the
    /// default) one example per row, from its first token, with padding after its end.
    /// </param>
    public static TokenDataset Build(TextSource source, ITokenizer tokenizer, double trainFraction = DefaultTrainFraction, string? separator = null,
        bool packExamples = false)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var separatorIds = tokenizer.Encode(separator ?? source.Separator);
        if (source is PromptCompletionSource examples) return BuildExamples(examples, tokenizer, separatorIds, trainFraction, packExamples);
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
    /// Fine-tuning examples back to back, each its prompt, its completion and the separator: only the completion and
    /// the separator are trainable, so a prompt token is never a target (the first completion token is: the prompt
    /// predicts it). Drawn one per row unless packed: packed, as TRL's packing and Megatron's pretraining are, no
    /// position is padding, but a window can start inside an example and see the end of the one before it.
    /// </summary>
    private static TokenDataset BuildExamples(PromptCompletionSource source, ITokenizer tokenizer, int[] separatorIds, double trainFraction,
        bool packExamples)
    {
        var all = new List<int>();
        var trainable = new List<bool>();
        var starts = new List<int>();
        foreach (var (prompt, completion) in source.ReadExamples())
        {
            starts.Add(all.Count);
            int[] promptIds = tokenizer.Encode(prompt), completionIds = tokenizer.Encode(completion);
            all.AddRange(promptIds);
            trainable.AddRange(new bool[promptIds.Length]);
            all.AddRange(completionIds);
            all.AddRange(separatorIds);
            for (int i = 0; i < completionIds.Length + separatorIds.Length; i++) trainable.Add(true);
        }

        return new TokenDataset(all.ToArray(), tokenizer.VocabularySize, trainFraction, trainable.ToArray(),
            packExamples ? null : starts.ToArray());
    }

    /// <summary>Whether the samplers draw one example per row (fine-tuning data, not packed).</summary>
    public bool ExampleRows => exampleStarts is not null;

    /// <summary>
    /// Where the examples that begin in <paramref name="split"/> begin, relative to the split; empty without examples.
    /// An example that begins in the training split and runs past it is cut at the split's end.
    /// </summary>
    public ReadOnlyMemory<int> ExampleStarts(DataSplit split)
    {
        if (exampleStarts is null) return ReadOnlyMemory<int>.Empty;
        int first = Array.FindIndex(exampleStarts, start => start >= TrainCount);
        if (first < 0) first = exampleStarts.Length;
        return split == DataSplit.Train
            ? exampleStarts.AsMemory(0, first)
            : exampleStarts[first..].Select(start => start - TrainCount).ToArray();
    }

    /// <summary>Examples (one per row) whose prompt, completion and separator do not fit a row of <paramref name="contextLength"/>.</summary>
    public int ExamplesLongerThan(int contextLength)
    {
        if (exampleStarts is null) return 0;
        int longer = 0;
        for (int e = 0; e < exampleStarts.Length; e++)
        {
            int end = e + 1 < exampleStarts.Length ? exampleStarts[e + 1] : tokens.Length;
            longer += end - exampleStarts[e] - 1 > contextLength ? 1 : 0;
        }

        return longer;
    }

    private static bool IsAscendingFromZero(int[] starts, int length)
    {
        if (starts.Length == 0 || starts[0] != 0) return false;
        for (int i = 1; i < starts.Length; i++)
        {
            if (starts[i] <= starts[i - 1] || starts[i] >= length) return false;
        }

        return true;
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
    public BatchSampler CreateSampler(DataSplit split, int batchSize, int contextLength, ulong seed, int stream = 0)
    {
        var starts = ExampleStarts(split);
        if (ExampleRows && starts.IsEmpty)
            throw new ArgumentException($"no example begins in the {split.ToString().ToLowerInvariant()} split ({Count:N0} tokens, {TrainFraction:P0} of them for training)");
        return new BatchSampler(Get(split), batchSize, contextLength, seed, stream, Trainable(split), starts);
    }

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
