using System;
using System.Collections.Generic;
using System.Globalization;
using Shardwise.Training.Config;

namespace Shardwise.Training.TokenDrop;

/// <summary>
/// One <c>[TokenDrop]</c> layer's tokens for one training micro-batch. <see cref="Indices"/> holds batch × sequence
/// entries: the first batch × <see cref="Reserved"/> are the packed rows [batch, reserved], each strictly increasing
/// (the positions the layer runs on); the rest are 0. A layer that drops nothing has the identity rows 0..sequence−1.
/// </summary>
public sealed record TokenDropDraw(int Reserved, int Sequence, int[] Indices)
{
    public bool Drops => Reserved < Sequence;
}

/// <summary>
/// Random-LTD's token choice (DeepSpeed's gpt_sample_tokens): for each dropping layer and each sample of a micro-batch,
/// a uniformly random set of <see cref="RandomLtdSchedule.ReservedLength"/> distinct positions, sorted. DeepSpeed draws
/// with torch.multinomial; here each set comes from a hash of (seed, step, micro-batch, layer, sample), not a stateful
/// generator, as <see cref="LayerDrop.ProgressiveLayerDrop"/> draws: every pipeline and tensor rank makes the same choice
/// for the same key, a resumed run the choice an unbroken one made, and a micro-batch's backward sees its forward's.
/// Whether data-parallel ranks share draws is the caller's choice of micro-batch index. Evaluation drops nothing, so it
/// calls none of this.
/// </summary>
public sealed class RandomLtdSampler
{
    private const ulong Golden = 0x9E3779B97F4A7C15UL;

    /// <summary>Separates these draws from progressive layer drop's under the same seed ("randomLTD" in ASCII).</summary>
    private const ulong Stream = 0x72616E646F6D4C54UL;

    private readonly ulong seed;
    private readonly bool[] drops;

    /// <param name="tokenDropLayers">The model's <c>[TokenDrop]</c> layer count; <see cref="CheckModel"/> must pass.</param>
    public RandomLtdSampler(RandomLtdConfig config, int tokenDropLayers, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (CheckModel(config, tokenDropLayers) is { } problem) throw new ArgumentException(problem, nameof(tokenDropLayers));
        Schedule = new RandomLtdSchedule(config);
        drops = new bool[tokenDropLayers];
        foreach (int layer in config.LayerIds) drops[layer] = true;
        this.seed = seed;
    }

    public RandomLtdSchedule Schedule { get; }

    /// <summary>The model's <c>[TokenDrop]</c> layers, in model order.</summary>
    public int Layers => drops.Length;

    /// <summary>Whether random_ltd_layer_id lists <paramref name="layer"/> (an index among the [TokenDrop] layers).</summary>
    public bool Drops(int layer) => drops[layer];

    /// <summary>
    /// Why <paramref name="config"/> does not fit a model with <paramref name="tokenDropLayers"/> <c>[TokenDrop]</c>
    /// layers, naming the keys and both numbers; null when it fits. For the trainer to call at start-up.
    /// </summary>
    public static string? CheckModel(RandomLtdConfig config, int tokenDropLayers, string model = "the model")
    {
        ArgumentNullException.ThrowIfNull(config);
        const string P = RandomLtdConfig.SectionPath;
        if (tokenDropLayers <= 0)
            return $"{P}.enabled is true, but {model} has no [TokenDrop] layer: mark the layers that may run on a subset of the tokens [TokenDrop], or switch random_ltd off";

        var problems = new List<string>();
        if (config.TotalLayerNum != tokenDropLayers)
            problems.Add($"{P}.total_layer_num is {N(config.TotalLayerNum)}, but {model} has {N(tokenDropLayers)} [TokenDrop] layers: set it to {N(tokenDropLayers)}");
        var past = new List<int>();
        for (int i = 0; i < config.LayerIds.Count; i++)
        {
            if (config.LayerIds[i] >= tokenDropLayers) past.Add(i);
        }
        if (past.Count > 0)
        {
            // One line however many ids are past the end (a 24-layer config on a 4-layer model lists 19).
            string others = past.Count == 1 ? "" : $" (and {N(past.Count - 1)} more id{(past.Count == 2 ? "" : "s")} past it)";
            problems.Add($"{P}.random_ltd_layer_id[{N(past[0])}] is {N(config.LayerIds[past[0]])}{others}, but {model} has {N(tokenDropLayers)} [TokenDrop] layers (0 to {N(tokenDropLayers - 1)})");
        }

        return problems.Count == 0 ? null : string.Join("; ", problems);
    }

    /// <summary>Every <c>[TokenDrop]</c> layer's tokens, in model order, for micro-batch <paramref name="microBatch"/> of the step after <paramref name="completedSteps"/> steps.</summary>
    /// <param name="firstSample">The global index of the micro-batch's first sample (a data-parallel rank's first row):
    /// a sample's draw depends on it, not on the rank, so a sharded run draws what one process with the whole batch does.</param>
    public TokenDropDraw[] Sample(long completedSteps, int microBatch, int batch, int sequence, int firstSample = 0)
    {
        var draws = new TokenDropDraw[Layers];
        for (int layer = 0; layer < draws.Length; layer++)
        {
            var indices = new int[checked(batch * sequence)];
            int reserved = Fill(completedSteps, microBatch, layer, batch, sequence, indices, firstSample);
            draws[layer] = new TokenDropDraw(reserved, sequence, indices);
        }

        return draws;
    }

    /// <summary>
    /// Writes layer <paramref name="layer"/>'s packed rows into <paramref name="indices"/> (batch × sequence entries, the
    /// layout of <see cref="TokenDropDraw.Indices"/>) and returns the tokens each sample keeps.
    /// </summary>
    public int Fill(long completedSteps, int microBatch, int layer, int batch, int sequence, Span<int> indices, int firstSample = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequence);
        if ((uint)layer >= (uint)Layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"the model has {Layers} [TokenDrop] layers");
        if (indices.Length != checked(batch * sequence))
            throw new ArgumentException($"needs batch × sequence = {batch * sequence} entries, has {indices.Length}", nameof(indices));

        int reserved = Reserved(completedSteps, layer, sequence);
        if (reserved == sequence)
        {
            FillIdentity(batch, sequence, indices);
            return sequence;
        }

        for (int sample = 0; sample < batch; sample++)
            DrawSorted(completedSteps, microBatch, layer, firstSample + sample, sequence, indices.Slice(sample * reserved, reserved));
        indices[(batch * reserved)..].Clear();
        return reserved;
    }

    /// <summary>
    /// The tokens of each sample layer <paramref name="layer"/> runs on in the step after <paramref name="completedSteps"/>
    /// steps: the schedule's reserved length where random_ltd_layer_id lists it, else (and never more than) the sequence.
    /// </summary>
    public int Reserved(long completedSteps, int layer, int sequence)
        => drops[layer] ? Math.Min(Schedule.ReservedLength(completedSteps), sequence) : sequence;

    /// <summary>The rows of a layer that runs on every token: 0..sequence−1 for each sample.</summary>
    public static void FillIdentity(int batch, int sequence, Span<int> indices)
    {
        for (int sample = 0; sample < batch; sample++)
        {
            var row = indices.Slice(sample * sequence, sequence);
            for (int position = 0; position < sequence; position++) row[position] = position;
        }
    }

    /// <summary>
    /// <paramref name="kept"/>.Length distinct positions of <paramref name="sequence"/>, ascending, every such set equally
    /// likely: selection sampling (Knuth's Algorithm S), which takes position p with probability
    /// (still needed) / (positions left), each draw an exact integer comparison. O(sequence), and sorted as drawn.
    /// </summary>
    public void DrawSorted(long step, int microBatch, int layer, int sample, int sequence, Span<int> kept)
    {
        if (kept.Length > sequence) throw new ArgumentException($"cannot keep {kept.Length} of {sequence} positions", nameof(kept));
        ulong key = Key(step, microBatch, layer, sample);
        int chosen = 0;
        for (int position = 0; chosen < kept.Length; position++)
        {
            // SplitMix64's stream from the key; the high word of r × left is uniform in [0, left) to within left / 2⁶⁴.
            ulong r = Mix(key + (ulong)position * Golden);
            ulong left = (ulong)(sequence - position);
            if (Math.BigMul(r, left, out _) < (ulong)(kept.Length - chosen)) kept[chosen++] = position;
        }
    }

    /// <summary>The hash of (seed, step, micro-batch, layer, sample), chained as progressive layer drop chains its keys.</summary>
    private ulong Key(long step, int microBatch, int layer, int sample)
    {
        ulong h = Mix(seed ^ Golden);
        h = Mix(h ^ Stream);
        h = Mix(h ^ (ulong)step);
        h = Mix(h ^ (ulong)(uint)microBatch);
        h = Mix(h ^ (ulong)(uint)layer);
        return Mix(h ^ (ulong)(uint)sample);
    }

    /// <summary>SplitMix64's finaliser.</summary>
    private static ulong Mix(ulong z)
    {
        z += Golden;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);
}
