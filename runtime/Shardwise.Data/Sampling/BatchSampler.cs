using System;

namespace Shardwise.Data;

/// <summary>
/// nanoGPT's <c>get_batch</c>, deterministic and resumable: each batch is <see cref="BatchSize"/> windows of
/// <c>ContextLength + 1</c> tokens starting at uniform random offsets; a row's inputs are the window minus its last
/// token and its targets the window minus its first. The only state is the RNG and the step count, both captured by
/// <see cref="SaveState"/>, so a restored sampler yields bitwise the same batches as the original would have.
/// With a trainable mask (fine-tuning data), a target whose token is not trainable is written as
/// <see cref="TokenDataset.IgnoredTarget"/>, which leaves it out of the loss. With example starts, each row is one
/// example drawn uniformly, from its first token; after its last token the row is padding (its last token repeated as
/// input, ignored targets), which under causal attention changes nothing before it.
/// </summary>
public sealed class BatchSampler
{
    private readonly ReadOnlyMemory<int> tokens;
    private readonly ReadOnlyMemory<bool> trainable;
    private readonly ReadOnlyMemory<int> exampleStarts;
    private readonly int windowCount;
    private Xoshiro256StarStar rng;

    /// <param name="trainable">Per token, whether it may be a target; empty: every token may.</param>
    /// <param name="exampleStarts">Where each example begins (ascending); empty: windows at any offset.</param>
    public BatchSampler(ReadOnlyMemory<int> tokens, int batchSize, int contextLength, ulong seed, int stream = 0,
        ReadOnlyMemory<bool> trainable = default, ReadOnlyMemory<int> exampleStarts = default)
    {
        if (!trainable.IsEmpty && trainable.Length != tokens.Length)
            throw new ArgumentException($"{trainable.Length} trainable flags for {tokens.Length} tokens", nameof(trainable));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        if (exampleStarts.IsEmpty && tokens.Length < contextLength + 1)
        {
            throw new ArgumentException(
                $"{tokens.Length} tokens cannot hold one window of context {contextLength} + 1 target", nameof(tokens));
        }

        this.tokens = tokens;
        this.trainable = trainable;
        this.exampleStarts = exampleStarts;
        BatchSize = batchSize;
        ContextLength = contextLength;

        // Offsets 0 .. Length - (context + 1): the last window's target is the last token (same as nanoGPT).
        windowCount = tokens.Length - contextLength;
        rng = Xoshiro256StarStar.FromSeed(seed, stream);
    }

    public int BatchSize { get; }

    public int ContextLength { get; }

    /// <summary>Elements in each of the inputs and targets buffers: BatchSize × ContextLength.</summary>
    public int TokensPerBatch => BatchSize * ContextLength;

    /// <summary>Batches drawn so far: the position in the data stream, saved with the RNG.</summary>
    public long Step { get; private set; }

    /// <summary>
    /// Fills row-major [BatchSize, ContextLength] buffers with the next batch. Allocates nothing, so it can run
    /// every step of a training loop.
    /// </summary>
    public void NextBatch(Span<int> inputs, Span<int> targets)
    {
        if (inputs.Length != TokensPerBatch || targets.Length != TokensPerBatch)
        {
            throw new ArgumentException(
                $"inputs and targets must each hold {BatchSize}×{ContextLength} = {TokensPerBatch} ids (got {inputs.Length} and {targets.Length})");
        }

        var source = tokens.Span;
        var mask = trainable.Span;
        var starts = exampleStarts.Span;
        for (var row = 0; row < BatchSize; row++)
        {
            // A window: context + 1 tokens from anywhere. An example: from its start to its end, at most context + 1.
            int start, pairs;
            if (starts.IsEmpty)
            {
                start = rng.NextInt(windowCount);
                pairs = ContextLength;
            }
            else
            {
                int example = rng.NextInt(starts.Length);
                start = starts[example];
                int end = example + 1 < starts.Length ? starts[example + 1] : source.Length;
                pairs = Math.Min(end - start - 1, ContextLength);
            }

            var rowInputs = inputs.Slice(row * ContextLength, ContextLength);
            var rowTargets = targets.Slice(row * ContextLength, ContextLength);
            source.Slice(start, pairs).CopyTo(rowInputs);
            source.Slice(start + 1, pairs).CopyTo(rowTargets);
            rowInputs[pairs..].Fill(source[start + pairs]);
            rowTargets[pairs..].Fill(TokenDataset.IgnoredTarget);
            if (mask.IsEmpty) continue;
            for (var i = 0; i < pairs; i++)
            {
                if (!mask[start + 1 + i]) rowTargets[i] = TokenDataset.IgnoredTarget;
            }
        }

        Step++;
    }

    public SamplerState SaveState() => new(rng.State, Step, BatchSize, ContextLength, tokens.Length) { ExampleCount = exampleStarts.Length };

    /// <summary>
    /// Continues from a saved state; the sampler must have the same shape and data size it was saved with, else
    /// <see cref="SamplerStateMismatchException"/>.
    /// </summary>
    public void RestoreState(SamplerState state)
    {
        if (state.BatchSize != BatchSize || state.ContextLength != ContextLength || state.TokenCount != tokens.Length)
        {
            throw new SamplerStateMismatchException(
                $"sampler state is for batch {state.BatchSize}, context {state.ContextLength}, {state.TokenCount} tokens; "
                + $"this sampler has batch {BatchSize}, context {ContextLength}, {tokens.Length} tokens");
        }

        if (state.ExampleCount != exampleStarts.Length)
        {
            static string Draws(int examples) => examples == 0 ? "windows at any offset (packed)" : $"one of {examples} examples per row";
            throw new SamplerStateMismatchException(
                $"sampler state draws {Draws(state.ExampleCount)}; this sampler draws {Draws(exampleStarts.Length)} (was --packing changed?)");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(state.Step, nameof(state));
        rng = new Xoshiro256StarStar(state.Rng);
        Step = state.Step;
    }
}
