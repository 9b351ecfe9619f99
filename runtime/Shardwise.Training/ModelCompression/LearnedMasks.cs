using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics.Tensors;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.ModelCompression;

/// <summary>
/// topk pruning's learned masks (DeepSpeed's TopKBinarizer over mask scores that train with the model): each masked
/// unit (a weight for sparse pruning, an output row for row pruning, an attention head's input columns for head
/// pruning) has an fp32 score, and every forward from the technique's schedule_offset on keeps the ⌈ratio·n⌉ units of
/// highest score. The binarizer passes its gradient straight through, so a unit's score gradient is ∂L/∂mask, the sum of
/// gradient × weight over the entries the unit masks (plus bias × its gradient for a row): the engine adds these up
/// from the raw gradients before they are masked, reduces them over ranks where the gradients are partitioned, counts
/// them in the clipped norm, and steps the scores with the run's optimizer (own state, one per technique, since each
/// starts at its own offset; before it the scores have no gradient and do not move, as in PyTorch).
/// Scores start as DeepSpeed's kaiming_uniform_(a=√5) draw, U(−1/√fan_in, 1/√fan_in) with fan_in the score tensor's
/// second dimension (a weight's columns for sparse pruning, 1 for rows, the head count for heads), from a generator
/// keyed by module and technique, so every rank starts alike.
/// </summary>
public sealed class LearnedMasks
{
    /// <summary>One module's scores within its technique's buffers.</summary>
    public sealed record Entry(CompressedModule Module, double DenseRatio, int Offset, int Length);

    /// <summary>The learned masks of one technique: scores, their gradients and their optimizer.</summary>
    public sealed class Technique
    {
        internal Technique(PruningKind kind, long scheduleOffset, IReadOnlyList<Entry> entries, AdamOptions options)
        {
            Kind = kind;
            ScheduleOffset = scheduleOffset;
            Entries = entries;
            int length = entries.Sum(e => e.Length);
            Scores = new float[length];
            Gradients = new float[length];
            Masks = entries.Select(e => new byte[e.Length]).ToArray();
            EntryOf = entries.Select((e, i) => (e.Module.Name, i)).ToDictionary(p => p.Name, p => p.i, StringComparer.Ordinal);
            var ranges = entries.Select(e => new Range(e.Offset, e.Offset + e.Length)).ToArray();
            Optimizer = new AdamOptimizer(length, options, options.Lamb is null ? null : ranges);
        }

        public PruningKind Kind { get; }
        public long ScheduleOffset { get; }
        public IReadOnlyList<Entry> Entries { get; }
        public float[] Scores { get; }
        public float[] Gradients { get; }
        public AdamOptimizer Optimizer { get; }

        /// <summary>The masks of the last <see cref="LearnedMasks.Refresh"/>, by entry.</summary>
        internal byte[][] Masks { get; }

        /// <summary>Each module's entry index (the engine asks for a module's mask per tensor piece of every step).</summary>
        internal IReadOnlyDictionary<string, int> EntryOf { get; }
    }

    private readonly List<Technique> _techniques = new();

    public LearnedMasks(CompressionTrainingConfig config, CompressionPlan plan, AdamOptions options)
    {
        // The scores are parameters of their own: no 1-bit exchange (their gradients are reduced exactly).
        var scoreOptions = options with { OneBit = null, OneBitLamb = null, ZeroOneAdam = null };
        foreach (var kind in WeightCompression.PruningKinds)
        {
            var pruning = WeightCompression.PruningOf(config, kind);
            if (!pruning.Enabled || !pruning.Learned) continue;
            var entries = new List<Entry>();
            int offset = 0;
            foreach (var module in plan.Modules)
            {
                if (module.DenseRatioOf(kind) is not { } ratio) continue;
                int length = module.UnitsOf(kind);
                entries.Add(new Entry(module, ratio, offset, length));
                offset += length;
            }
            if (entries.Count == 0) continue;
            var technique = new Technique(kind, pruning.ScheduleOffset, entries, scoreOptions);
            foreach (var entry in entries) InitialScores(technique.Scores.AsSpan(entry.Offset, entry.Length), entry, kind);
            _techniques.Add(technique);
        }
    }

    public IReadOnlyList<Technique> Techniques => _techniques;

    /// <summary>Host bytes: each score with its gradient and two moments, and a mask byte.</summary>
    public static long BufferBytesFor(CompressionTrainingConfig config, CompressionPlan plan)
    {
        long units = plan.Modules.Sum(module => WeightCompression.PruningKinds
            .Where(kind => module.DenseRatioOf(kind) is not null && WeightCompression.PruningOf(config, kind).Learned)
            .Sum(kind => (long)module.UnitsOf(kind)));
        return units * (4 * sizeof(float) + 1);
    }

    /// <summary>The mask the forwards after <paramref name="appliedUpdates"/> updates use; null before the offset or where not learned.</summary>
    public byte[]? MaskOf(CompressedModule module, PruningKind kind, long appliedUpdates)
    {
        foreach (var technique in _techniques)
        {
            if (technique.Kind != kind || appliedUpdates < technique.ScheduleOffset) continue;
            return technique.EntryOf.TryGetValue(module.Name, out int i) ? technique.Masks[i] : null;
        }
        return null;
    }

    /// <summary>Takes every active technique's masks from its current scores (after each update, before the forwards).</summary>
    public void Refresh(long appliedUpdates)
    {
        foreach (var technique in Active(appliedUpdates))
            for (int i = 0; i < technique.Entries.Count; i++)
            {
                var entry = technique.Entries[i];
                MagnitudeMask.KeepLargest(technique.Scores.AsSpan(entry.Offset, entry.Length), entry.DenseRatio).CopyTo(technique.Masks[i], 0);
            }
    }

    /// <summary>
    /// Adds ∂L/∂mask of every active technique from <paramref name="gradients"/>, the raw (unmasked) gradients of layout
    /// elements [start, start + gradients.Length), and <paramref name="weights"/>, the unmasked weights of the same
    /// elements (the fp32 masters the forward's weights were rounded from).
    /// </summary>
    public void AccumulateGradients(ReadOnlySpan<float> gradients, ReadOnlySpan<float> weights, long start, long appliedUpdates)
    {
        long end = start + gradients.Length;
        foreach (var technique in Active(appliedUpdates))
        {
            foreach (var entry in technique.Entries)
            {
                var module = entry.Module;
                var into = technique.Gradients.AsSpan(entry.Offset, entry.Length);
                // Row by row, the part of each weight row inside the span: products summed by TensorPrimitives.
                foreach (var (row, column, first, count) in module.RowRuns(start, end))
                {
                    var g = gradients.Slice(checked((int)(first - start)), count);
                    var w = weights.Slice(checked((int)(first - start)), count);
                    switch (technique.Kind)
                    {
                        case PruningKind.Sparse:
                            var units = into.Slice(row * module.Columns + column, g.Length);
                            TensorPrimitives.MultiplyAdd(g, w, units, units);
                            break;
                        case PruningKind.Row:
                            into[row] += TensorPrimitives.Dot(g, w);
                            break;
                        default:
                            // The heads whose columns this run of the row covers.
                            for (int c = column; c < column + g.Length;)
                            {
                                int head = c / module.HeadColumns, stop = Math.Min(column + g.Length, (head + 1) * module.HeadColumns);
                                into[head] += TensorPrimitives.Dot(g.Slice(c - column, stop - c), w.Slice(c - column, stop - c));
                                c = stop;
                            }
                            break;
                    }
                }
                // Row pruning masks the bias with its row: bias·mask adds b·∂L/∂b to the row's mask gradient.
                if (technique.Kind == PruningKind.Row && module.BiasOffset is { } bias)
                {
                    long first = Math.Max(start, bias), last = Math.Min(end, bias + module.Rows);
                    for (long element = first; element < last; element++)
                        into[checked((int)(element - bias))] += gradients[checked((int)(element - start))] * weights[checked((int)(element - start))];
                }
            }
        }
    }

    /// <summary>Each active technique's whole gradient buffer, for the engine to sum over ranks that each added their part.</summary>
    public IEnumerable<float[]> GradientBuffers(long appliedUpdates) => Active(appliedUpdates).Select(t => t.Gradients);

    /// <summary>Σ of squares of the active score gradients (still scaled as the weights' are), for the global norm.</summary>
    public double SumOfSquares(long appliedUpdates)
    {
        double sum = 0;
        foreach (var technique in Active(appliedUpdates))
            foreach (float g in technique.Gradients) sum += (double)g * g;
        return sum;
    }

    /// <summary>Drops the gradients of a skipped (overflowed) step.</summary>
    public void DiscardGradients()
    {
        foreach (var technique in _techniques) Array.Clear(technique.Gradients);
    }

    /// <summary>
    /// Steps the active techniques' scores with their gradients times <paramref name="gradientMultiplier"/> (the weights'
    /// unscale-and-clip factor) at the run's learning rate, and clears the gradients.
    /// </summary>
    public void Step(long appliedUpdates, double learningRate, (double Beta1, double Beta2)? betas, float gradientMultiplier)
    {
        foreach (var technique in Active(appliedUpdates))
        {
            if (gradientMultiplier != 1f)
                for (int i = 0; i < technique.Gradients.Length; i++) technique.Gradients[i] *= gradientMultiplier;
            technique.Optimizer.Step(technique.Scores, technique.Gradients, learningRate, betas);
            Array.Clear(technique.Gradients);
        }
    }

    private IEnumerable<Technique> Active(long appliedUpdates) => _techniques.Where(t => appliedUpdates >= t.ScheduleOffset);

    private static void InitialScores(Span<float> scores, Entry entry, PruningKind kind)
    {
        int fanIn = kind switch { PruningKind.Sparse => entry.Module.Columns, PruningKind.Row => 1, _ => entry.Module.Heads };
        double bound = 1.0 / Math.Sqrt(fanIn);
        var random = new Random(StableHash(entry.Module.Name + "/" + kind));
        for (int i = 0; i < scores.Length; i++) scores[i] = (float)((2 * random.NextDouble() - 1) * bound);
    }

    /// <summary>FNV-1a over the name's characters: the same on every rank and every run (string.GetHashCode is per process).</summary>
    private static int StableHash(string text)
    {
        uint hash = 2166136261;
        foreach (char c in text) hash = (hash ^ c) * 16777619;
        return unchecked((int)hash);
    }
}
