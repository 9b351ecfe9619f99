using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Shardwise.Precision;
using Shardwise.Training.Config;

namespace Shardwise.Training.ModelCompression;

/// <summary>Which mask a pruned module carries.</summary>
public enum PruningKind
{
    /// <summary>sparse_pruning: one entry per weight.</summary>
    Sparse,
    /// <summary>row_pruning: one entry per output row, masking the row and its bias.</summary>
    Row,
    /// <summary>head_pruning: one entry per attention head, masking the input columns its values feed.</summary>
    Head,
}

/// <summary>
/// compression_training at run time, as a rewrite of the working weights after each update: the engine refreshes the
/// working copy from the fp32 masters, then <see cref="Apply"/> quantizes the planned weights and zeroes the pruned
/// ones. The forward sees the compressed weights; the gradients pass straight through the quantizer to the masters
/// (DeepSpeed's straight-through estimator), and <see cref="MaskGradients"/> zeroes those of pruned weights, as the
/// gradient of w·mask is. Masks are taken once, from the working weights of the update that reaches the technique's
/// schedule_offset (DeepSpeed takes them when the model is wrapped; for offset 0 that is the same update).
/// </summary>
public sealed class WeightCompression
{
    private readonly Dictionary<(string Module, PruningKind Kind), byte[]> _masks = new();
    private readonly HashSet<(string Module, PruningKind Kind)> _restored = new(); // put back from a checkpoint, not taken here
    private readonly float[] _scratch;

    /// <param name="scoreOptimizer">How topk's mask scores step (the run's optimizer settings); Adam's defaults when null.</param>
    public WeightCompression(CompressionTrainingConfig config, CompressionPlan plan, Optim.AdamOptions? scoreOptimizer = null)
    {
        if (plan.Problems.Count > 0) throw new ArgumentException("compression_training does not fit the model: " + string.Join("; ", plan.Problems));
        Config = config;
        Plan = plan;
        Schedule = new QuantizationSchedule(config.WeightQuantization);
        _scratch = new float[plan.Modules.Where(m => m.QuantizationGroup is not null).Select(m => m.WeightLength).DefaultIfEmpty(0).Max()];
        Learned = config.LearnsMasks ? new LearnedMasks(config, plan, scoreOptimizer ?? new Optim.AdamOptions()) : null;
    }

    /// <summary>topk's mask scores; null when every pruning technique takes its masks from magnitudes (l1).</summary>
    public LearnedMasks? Learned { get; }

    /// <summary>The pruning techniques, in the order their checkpoint tensors and score buffers take them.</summary>
    public static readonly PruningKind[] PruningKinds = [PruningKind.Sparse, PruningKind.Row, PruningKind.Head];

    /// <summary>The section of <paramref name="config"/> that configures <paramref name="kind"/>.</summary>
    public static PruningConfig PruningOf(CompressionTrainingConfig config, PruningKind kind) => kind switch
    {
        PruningKind.Sparse => config.SparsePruning,
        PruningKind.Row => config.RowPruning,
        _ => config.HeadPruning,
    };

    public CompressionTrainingConfig Config { get; }

    public CompressionPlan Plan { get; }

    public QuantizationSchedule Schedule { get; }

    /// <summary>
    /// Host bytes this compression holds once every mask is taken: the quantizer's scratch (the largest quantized
    /// weight) and one byte per masked weight or row. The memory plan counts it from the start.
    /// </summary>
    public long BufferBytes => BufferBytesFor(Plan, Config);

    /// <summary>
    /// <see cref="BufferBytes"/> for a plan, before any engine exists (the memory plan's prediction): with topk, each
    /// learned unit's score, gradient, two moments and mask byte instead of the l1 mask byte.
    /// </summary>
    public static long BufferBytesFor(CompressionPlan plan, CompressionTrainingConfig config)
    {
        long scratch = plan.Modules.Where(m => m.QuantizationGroup is not null).Select(m => (long)m.WeightLength).DefaultIfEmpty(0).Max() * sizeof(float);
        long masks = plan.Modules.Sum(m => PruningKinds.Where(kind => m.DenseRatioOf(kind) is not null && !PruningOf(config, kind).Learned)
                                                       .Sum(kind => (long)m.UnitsOf(kind)));
        return scratch + masks + LearnedMasks.BufferBytesFor(config, plan);
    }

    /// <summary>Where bit switches and mask takings are reported (the trainer's log); null: nowhere.</summary>
    public Action<string>? Report { get; set; }

    /// <summary>The l1 masks taken so far, by module and kind (what a checkpoint keeps; learned masks follow from the scores).</summary>
    public IReadOnlyDictionary<(string Module, PruningKind Kind), byte[]> Masks => _masks;

    /// <summary>Puts back a mask a checkpoint kept; the next <see cref="Apply"/> uses it instead of taking one.</summary>
    public void RestoreMask(string module, PruningKind kind, byte[] mask)
    {
        var target = Plan.Modules.FirstOrDefault(m => m.Name == module)
            ?? throw new ArgumentException($"{module} is not a compressed module of this run");
        int expected = kind == PruningKind.Row ? target.Rows : target.WeightLength;
        if (mask.Length != expected) throw new ArgumentException($"{module}'s {kind} mask has {mask.Length} entries; the module needs {expected}");
        _masks[(module, kind)] = mask;
        _restored.Add((module, kind));
    }

    /// <summary>
    /// Drops the masks taken from the weights held so far, keeping those a checkpoint put back: other weights are being
    /// imported (a resume, an evaluation), and a mask due now is taken from them instead, not from the seed's.
    /// </summary>
    public void ForgetTakenMasks()
    {
        foreach (var key in _masks.Keys.Where(k => !_restored.Contains(k)).ToList()) _masks.Remove(key);
    }

    /// <summary>The masks due after <paramref name="appliedUpdates"/> updates that are not held: the next <see cref="Apply"/> takes them from the weights it is given.</summary>
    public IEnumerable<(string Module, PruningKind Kind)> MissingMasks(long appliedUpdates)
    {
        foreach (var module in Plan.Modules)
        {
            if (module.SparseDenseRatio is not null && TakesMagnitudeMask(PruningKind.Sparse, appliedUpdates) && !_masks.ContainsKey((module.Name, PruningKind.Sparse)))
                yield return (module.Name, PruningKind.Sparse);
            if (module.RowDenseRatio is not null && TakesMagnitudeMask(PruningKind.Row, appliedUpdates) && !_masks.ContainsKey((module.Name, PruningKind.Row)))
                yield return (module.Name, PruningKind.Row);
        }
    }

    /// <summary>Whether the technique's masks apply after <paramref name="appliedUpdates"/> updates.</summary>
    public bool IsPruning(PruningKind kind, long appliedUpdates)
    {
        var pruning = PruningOf(Config, kind);
        return pruning.Enabled && appliedUpdates >= pruning.ScheduleOffset;
    }

    /// <summary>Whether <paramref name="kind"/> prunes by an l1 mask taken once, due after <paramref name="appliedUpdates"/> updates.</summary>
    private bool TakesMagnitudeMask(PruningKind kind, long appliedUpdates) => IsPruning(kind, appliedUpdates) && !PruningOf(Config, kind).Learned;

    /// <summary>The mask <paramref name="kind"/> applies to <paramref name="module"/> after <paramref name="appliedUpdates"/> updates; null for none.</summary>
    private byte[]? MaskOf(CompressedModule module, PruningKind kind, long appliedUpdates)
    {
        if (!IsPruning(kind, appliedUpdates)) return null;
        if (PruningOf(Config, kind).Learned) return Learned?.MaskOf(module, kind, appliedUpdates);
        return _masks.GetValueOrDefault((module.Name, kind));
    }

    /// <summary>
    /// Compresses the working weights in <paramref name="parameters"/> (the full layout, just refreshed from the masters)
    /// for the forwards after <paramref name="appliedUpdates"/> updates, then rounds them to <paramref name="storage"/>.
    /// </summary>
    public void Apply(Span<float> parameters, long appliedUpdates, StorageType storage)
    {
        foreach (var (group, bits, call) in Schedule.AdvanceTo(appliedUpdates))
        {
            // A resumed run replays the earlier switches to reach its bits; only this update's is news.
            if (Config.WeightQuantization.Verbose && call == Schedule.Calls)
                Report?.Invoke($"compression: weight quantization {Config.WeightQuantization.Groups[group].Modules.Name} at {bits} bits from update {appliedUpdates} on (the quantizer's call {call})");
        }
        TakeDueMasks(parameters, appliedUpdates);
        Learned?.Refresh(appliedUpdates);
        bool quantizing = Schedule.IsActive(appliedUpdates);
        var quantization = Config.WeightQuantization;
        foreach (var module in Plan.Modules)
        {
            var weight = parameters.Slice(checked((int)module.WeightOffset), module.WeightLength);
            if (quantizing && module.QuantizationGroup is { } group) Quantize(weight, group, quantization, appliedUpdates);
            if (MaskOf(module, PruningKind.Sparse, appliedUpdates) is { } sparse)
            {
                MaskEntriesOf(weight, sparse);
            }
            if (MaskOf(module, PruningKind.Row, appliedUpdates) is { } rows)
            {
                MaskRows(weight, module, rows);
                if (module.BiasOffset is { } bias) MaskEntriesOf(parameters.Slice(checked((int)bias), module.Rows), rows);
            }
            if (MaskOf(module, PruningKind.Head, appliedUpdates) is { } heads)
            {
                for (int r = 0; r < module.Rows; r++) MaskHeadColumns(weight.Slice(r * module.Columns, module.Columns), 0, module, heads);
            }
            StorageRounding.RoundInPlace(weight, storage);
        }
    }

    /// <summary>
    /// Zeroes the gradients of pruned weights (and pruned rows' biases) in <paramref name="gradients"/>, this rank's
    /// span of the layout from element <paramref name="start"/>. With topk masks, first adds the mask scores'
    /// gradients from the unmasked gradients and <paramref name="weights"/> (the same elements' unmasked weights).
    /// </summary>
    public void MaskGradients(Span<float> gradients, long start, long appliedUpdates, ReadOnlySpan<float> weights = default)
    {
        if (Learned is not null)
        {
            if (weights.Length != gradients.Length)
                throw new ArgumentException($"topk mask scores need the weights beside the gradients: {weights.Length} weights for {gradients.Length} gradients");
            Learned.AccumulateGradients(gradients, weights, start, appliedUpdates);
        }
        foreach (var module in Plan.Modules)
        {
            if (MaskOf(module, PruningKind.Sparse, appliedUpdates) is { } sparse)
                MaskOverlap(gradients, start, module.WeightOffset, sparse, columns: 1);
            if (MaskOf(module, PruningKind.Row, appliedUpdates) is { } rows)
            {
                MaskOverlap(gradients, start, module.WeightOffset, rows, columns: module.Columns);
                if (module.BiasOffset is { } bias) MaskOverlap(gradients, start, bias, rows, columns: 1);
            }
            if (MaskOf(module, PruningKind.Head, appliedUpdates) is { } heads)
            {
                foreach (var (_, column, first, count) in module.RowRuns(start, start + gradients.Length))
                    MaskHeadColumns(gradients.Slice(checked((int)(first - start)), count), column, module, heads);
            }
        }
    }

    /// <summary>Lines for the run's header: what each technique covers and when it starts.</summary>
    public IEnumerable<string> Describe()
    {
        var quantization = Config.WeightQuantization;
        if (quantization.Enabled)
        {
            for (int g = 0; g < quantization.Groups.Count; g++)
            {
                var group = quantization.Groups[g];
                var names = Plan.Modules.Where(m => m.QuantizationGroup == g).Select(m => m.Name).ToList();
                string bits = quantization.InForward ? $"{group.TargetBits} bits in every forward" : $"{group.StartBits}→{group.TargetBits} bits, period {group.QuantizationPeriod} doubling";
                yield return $"compression: weight quantization {group.Modules.Name}: {bits}, {quantization.Type.ToString().ToLowerInvariant()}, "
                    + $"{quantization.QuantizeGroups} group(s) per tensor, from update {Schedule.FirstQuantizedUpdate}; {names.Count} module(s): {string.Join(", ", names)}";
            }
        }
        foreach (var kind in PruningKinds)
        {
            var pruning = PruningOf(Config, kind);
            if (!pruning.Enabled) continue;
            foreach (var group in pruning.Groups)
            {
                var names = Plan.Modules.Where(m => m.DenseRatioOf(kind) is not null
                    && group.Modules.Modules.Any(p => CompressionPlan.Matches(p, m.Name))).Select(m => m.Name).ToList();
                string units = kind switch { PruningKind.Sparse => "weight tensor", PruningKind.Row => "weight's rows", _ => $"projection's {pruning.NumHeads} heads" };
                string how = pruning.Learned ? " by learned scores" : "";
                yield return $"compression: {kind.ToString().ToLowerInvariant()} pruning ({pruning.Method}) {group.Modules.Name}: keeps {group.DenseRatio:0.###} of each "
                    + $"{units}{how} from update {pruning.ScheduleOffset}; {names.Count} module(s): {string.Join(", ", names)}";
            }
        }
    }

    private void Quantize(Span<float> weight, int group, WeightQuantizationConfig quantization, long appliedUpdates)
    {
        double mix = Schedule.MixingRatio;
        // Noise keyed by update and tensor: every rank draws the same, each update draws anew.
        ulong seed = unchecked((ulong)appliedUpdates * 0x9E3779B97F4A7C15UL ^ (ulong)weight.Length * 0xC2B2AE3D27D4EB4FUL);
        if (mix == 0)
        {
            WeightQuantizer.Quantize(weight, quantization.QuantizeGroups, Schedule.Bits(group), quantization.Type, quantization.Rounding, seed);
            return;
        }
        var quantized = _scratch.AsSpan(0, weight.Length);
        weight.CopyTo(quantized);
        WeightQuantizer.Quantize(quantized, quantization.QuantizeGroups, Schedule.Bits(group), quantization.Type, quantization.Rounding, seed);
        // ratio·w + (1 − ratio)·Q(w), in fp32 as DeepSpeed blends its fp16 weights.
        TensorPrimitives.Multiply(weight, (float)mix, weight);
        TensorPrimitives.MultiplyAdd(quantized, (float)(1 - mix), weight, weight);
    }

    private void TakeDueMasks(ReadOnlySpan<float> parameters, long appliedUpdates)
    {
        foreach (var module in Plan.Modules)
        {
            var weight = parameters.Slice(checked((int)module.WeightOffset), module.WeightLength);
            if (module.SparseDenseRatio is { } dense && TakesMagnitudeMask(PruningKind.Sparse, appliedUpdates) && !_masks.ContainsKey((module.Name, PruningKind.Sparse)))
            {
                _masks[(module.Name, PruningKind.Sparse)] = MagnitudeMask.ForWeights(weight, dense);
                Report?.Invoke($"compression: sparse pruning mask of {module.Name} taken at update {appliedUpdates}: {MagnitudeMask.Kept(module.WeightLength, dense)} of {module.WeightLength} weights kept");
            }
            if (module.RowDenseRatio is { } rows && TakesMagnitudeMask(PruningKind.Row, appliedUpdates) && !_masks.ContainsKey((module.Name, PruningKind.Row)))
            {
                _masks[(module.Name, PruningKind.Row)] = MagnitudeMask.ForRows(weight, module.Rows, rows);
                Report?.Invoke($"compression: row pruning mask of {module.Name} taken at update {appliedUpdates}: {MagnitudeMask.Kept(module.Rows, rows)} of {module.Rows} rows kept");
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MaskEntriesOf(Span<float> weight, byte[] mask)
    {
        for (int i = 0; i < weight.Length; i++) weight[i] *= mask[i];
    }

    /// <summary>Zeroes, in a run of one weight row starting at column <paramref name="firstColumn"/>, the columns of pruned heads.</summary>
    private static void MaskHeadColumns(Span<float> run, int firstColumn, CompressedModule module, byte[] heads)
    {
        for (int h = 0; h < heads.Length; h++)
        {
            if (heads[h] != 0) continue;
            int from = Math.Max(firstColumn, h * module.HeadColumns), to = Math.Min(firstColumn + run.Length, (h + 1) * module.HeadColumns);
            if (from < to) run.Slice(from - firstColumn, to - from).Clear();
        }
    }

    private static void MaskRows(Span<float> weight, CompressedModule module, byte[] rows)
    {
        for (int r = 0; r < module.Rows; r++)
        {
            if (rows[r] == 0) weight.Slice(r * module.Columns, module.Columns).Clear();
        }
    }


    /// <summary>
    /// Zeroes, in the span holding layout elements [start, start + span.Length), the elements of the tensor at
    /// <paramref name="offset"/> whose mask entry (one per <paramref name="columns"/> consecutive elements) is 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // once per update: see WeightQuantizer
    private static void MaskOverlap(Span<float> span, long start, long offset, byte[] mask, int columns)
    {
        long length = (long)mask.Length * columns;
        long from = Math.Max(start, offset), to = Math.Min(start + span.Length, offset + length);
        if (columns == 1)
        {
            for (long element = from; element < to; element++)
            {
                if (mask[element - offset] == 0) span[checked((int)(element - start))] = 0;
            }
            return;
        }
        // Entry by entry: each masked entry clears the part of its run of columns inside the span.
        for (long entry = (from - offset) / columns; entry < mask.Length && offset + entry * columns < to; entry++)
        {
            if (mask[entry] != 0) continue;
            long first = Math.Max(from, offset + entry * columns), last = Math.Min(to, offset + (entry + 1) * columns);
            if (first < last) span.Slice(checked((int)(first - start)), checked((int)(last - first))).Clear();
        }
    }
}
