using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Cli;

/// <summary>One configuration autotuning may time: a ZeRO stage and a micro-batch size, with the batch they imply.</summary>
/// <param name="PredictedBytes">What the memory plan says rank 0 holds (the device's share on a GPU).</param>
/// <param name="Skipped">Why it is not timed (does not fit, does not divide the batch, beyond the largest sizes); null: timed.</param>
public sealed record AutotuningCandidate(int Stage, int MicroBatch, int GradientAccumulation, long PredictedBytes, string? Skipped)
{
    /// <summary>The config this candidate runs: the search space's lists replaced by its values.</summary>
    public DeepSpeedConfig Apply(DeepSpeedConfig config) => config with
    {
        MicroBatchPerGpu = MicroBatch,
        GradientAccumulationSteps = GradientAccumulation,
        MicroBatchCandidates = null,
        ZeroOptimization = config.ZeroOptimization with { Stage = Stage, StageCandidates = null },
    };
}

/// <summary>
/// The candidates of an autotuning run, decided before any is timed, from the config and the static memory plan:
/// the stages listed in zero_optimization.stage (else the configured one) × the micro-batch sizes listed in
/// train_micro_batch_size_per_gpu (else the configured one; else the powers of two between the section's min and max,
/// of which the <c>num_tuning_micro_batch_sizes</c> largest that fit are timed). DeepSpeed finds what fits by running
/// until memory runs out; here <see cref="MemoryPlan.Predict"/> says it without allocating.
/// </summary>
public sealed class AutotuningSpace
{
    private AutotuningSpace(IReadOnlyList<AutotuningCandidate> candidates, long limit, string limitSource)
    {
        Candidates = candidates;
        Limit = limit;
        LimitSource = limitSource;
    }

    public IReadOnlyList<AutotuningCandidate> Candidates { get; }

    public long Limit { get; }

    public string LimitSource { get; }

    public IEnumerable<AutotuningCandidate> ToTime => Candidates.Where(c => c.Skipped is null);

    /// <param name="predict">The memory plan of a candidate config, in the bytes that must fit under <paramref name="limit"/>.</param>
    public static AutotuningSpace Build(DeepSpeedConfig config, AutotuningConfig tuning, int ranks, long limit, string limitSource,
        Func<DeepSpeedConfig, long> predict)
    {
        var stages = config.ZeroOptimization.StageCandidates ?? [config.ZeroOptimization.Stage];
        bool searched = config.MicroBatchCandidates is null && config.MicroBatchPerGpu is null;
        var micros = config.MicroBatchCandidates ?? (config.MicroBatchPerGpu is { } fixedMicro ? [fixedMicro] : PowersOfTwo(tuning.MinMicroBatch, tuning.MaxMicroBatch));
        var candidates = new List<AutotuningCandidate>();
        foreach (int stage in stages.Distinct())
        {
            var row = new List<AutotuningCandidate>();
            foreach (int micro in micros.Distinct())
            {
                int? accumulation = Accumulation(config, micro, ranks, out string? reason);
                var candidate = new AutotuningCandidate(stage, micro, accumulation ?? 0, 0, reason);
                if (accumulation is not null)
                {
                    long bytes = predict(candidate.Apply(config));
                    candidate = candidate with
                    {
                        PredictedBytes = bytes,
                        Skipped = bytes > limit ? $"does not fit: {MemoryReport.Format(bytes)} > {MemoryReport.Format(limit)}" : null,
                    };
                }
                row.Add(candidate);
            }

            // A searched range times only its largest sizes that fit (the small ones are rarely the fastest).
            if (searched)
            {
                var largest = row.Where(c => c.Skipped is null).OrderByDescending(c => c.MicroBatch).Take(tuning.TuningMicroBatchSizes).ToHashSet();
                for (int i = 0; i < row.Count; i++)
                {
                    if (row[i].Skipped is null && !largest.Contains(row[i]))
                        row[i] = row[i] with { Skipped = $"fits, but only the {tuning.TuningMicroBatchSizes} largest that fit are timed (num_tuning_micro_batch_sizes)" };
                }
            }

            candidates.AddRange(row);
        }

        // tuner_num_trials caps the experiments, in the order they are listed.
        int timed = 0;
        for (int i = 0; i < candidates.Count; i++)
        {
            if (candidates[i].Skipped is not null) continue;
            if (++timed > tuning.MaxTrials) candidates[i] = candidates[i] with { Skipped = $"beyond tuner_num_trials ({tuning.MaxTrials})" };
        }

        return new AutotuningSpace(candidates, limit, limitSource);
    }

    /// <summary>The gradient accumulation for a micro-batch size: train_batch_size's quotient, else the config's (or 1).</summary>
    private static int? Accumulation(DeepSpeedConfig config, int micro, int ranks, out string? reason)
    {
        reason = null;
        if (config.TrainBatchSize is not { } total) return config.GradientAccumulationSteps ?? 1;
        if (total % (micro * ranks) == 0) return total / (micro * ranks);
        reason = $"train_batch_size {total} is not a multiple of micro-batch × ranks = {micro * ranks}";
        return null;
    }

    private static int[] PowersOfTwo(int min, int max)
    {
        var sizes = new List<int>();
        for (long size = 1; size <= max; size *= 2)
        {
            if (size >= min) sizes.Add((int)size);
        }

        return sizes.Count > 0 ? sizes.ToArray() : [min];
    }

    /// <summary>The space as a table, before anything runs.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"autotuning space: {Candidates.Count} candidate(s), {ToTime.Count()} to time; memory limit {MemoryReport.Format(Limit)} ({LimitSource})\n");
        text.Append("| ZeRO stage | micro-batch | accumulation | planned memory (rank 0) | |\n|---|---|---|---|---|\n");
        foreach (var c in Candidates)
        {
            string memory = c.PredictedBytes > 0 ? MemoryReport.Format(c.PredictedBytes) : "-";
            text.Append(CultureInfo.InvariantCulture, $"| {c.Stage} | {c.MicroBatch} | {(c.GradientAccumulation > 0 ? c.GradientAccumulation.ToString(CultureInfo.InvariantCulture) : "-")} | {memory} | {c.Skipped ?? "timed"} |\n");
        }

        return text.ToString();
    }
}
