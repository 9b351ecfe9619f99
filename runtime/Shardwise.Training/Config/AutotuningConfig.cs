using System;
using System.Collections.Generic;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>What an autotuning experiment is judged by (DeepSpeed's <c>metric</c>).</summary>
public enum AutotuningMetric
{
    /// <summary>Samples per second: higher is better (DeepSpeed's default).</summary>
    Throughput,

    /// <summary>Seconds per optimizer step: lower is better.</summary>
    Latency,

    /// <summary>Model FLOP/s (6N per token plus attention): higher is better.</summary>
    Flops,
}

/// <summary>
/// The "autotuning" section (deepspeed/autotuning/config.py and constants.py): the steps each experiment times, the
/// metric, where the results go and the micro-batch range to search. The search space itself is in the config's
/// lists: <c>train_micro_batch_size_per_gpu</c> and <c>zero_optimization.stage</c> may be lists when autotuning is
/// enabled (<see cref="DeepSpeedConfig.MicroBatchCandidates"/>, <see cref="ZeroOptimizationConfig.StageCandidates"/>).
/// <c>train</c> runs the config as written; <c>tune</c> (Cli/TuneCommand) runs the experiments. Launcher keys
/// (num_gpus, num_nodes) and tuner choices are read with a warning: Shardwise runs every candidate in the job it was
/// started in (a grid search).
/// </summary>
public sealed record AutotuningConfig
{
    public bool Enabled { get; init; }

    /// <summary>The first timed step of each experiment (1-based; the steps before it warm up).</summary>
    public int StartProfileStep { get; init; } = 3;

    /// <summary>The last step of each experiment.</summary>
    public int EndProfileStep { get; init; } = 5;

    public AutotuningMetric Metric { get; init; } = AutotuningMetric.Throughput;

    /// <summary>Where <c>tune</c> writes ds_config_optimal.json and experiments.csv (under --output).</summary>
    public string ResultsDirectory { get; init; } = "autotuning_results";

    public int MinMicroBatch { get; init; } = 1;

    public int MaxMicroBatch { get; init; } = 1024;

    /// <summary>How many of the largest micro-batch sizes that fit in memory are timed (when the config lists none).</summary>
    public int TuningMicroBatchSizes { get; init; } = 3;

    /// <summary>At most this many experiments.</summary>
    public int MaxTrials { get; init; } = 50;

    private static readonly Dictionary<string, AutotuningMetric> MetricNames = new(StringComparer.Ordinal)
    {
        ["throughput"] = AutotuningMetric.Throughput,
        ["latency"] = AutotuningMetric.Latency,
        ["flops"] = AutotuningMetric.Flops,
    };

    public static string MetricName(AutotuningMetric metric) => metric.ToString().ToLowerInvariant();

    /// <summary>Whether the root has "autotuning": {"enabled": true}: the lists of the search space are read only then.</summary>
    internal static bool IsEnabled(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object
        && root.TryGetProperty("autotuning", out var section) && section.ValueKind == JsonValueKind.Object
        && section.TryGetProperty("enabled", out var enabled) && enabled.ValueKind == JsonValueKind.True;

    internal static AutotuningConfig? Read(JsonSection root)
    {
        var section = root.Section("autotuning");
        if (section.Bool("enabled") != true)
        {
            section.SkipRest();
            return null;
        }

        int start = ReadStep(section, "start_profile_step", "start_step") ?? 3;
        int end = ReadStep(section, "end_profile_step", "end_step") ?? 5;
        if (end < start) section.Error("end_profile_step", $"{end} is before start_profile_step ({start})");

        var metric = AutotuningMetric.Throughput;
        if (section.String("metric") is { } name)
        {
            if (MetricNames.TryGetValue(name, out var known)) metric = known;
            else section.Error("metric", $"unknown metric \"{name}\": use throughput, latency or flops");
        }

        int min = section.Int32("min_train_micro_batch_size_per_gpu", AutoRule.NotAllowed, min: 1) ?? 1;
        int max = section.Int32("max_train_micro_batch_size_per_gpu", AutoRule.NotAllowed, min: 1) ?? 1024;
        if (max < min) section.Error("max_train_micro_batch_size_per_gpu", $"{max} is below min_train_micro_batch_size_per_gpu ({min})");
        var config = new AutotuningConfig
        {
            Enabled = true,
            StartProfileStep = start,
            EndProfileStep = end,
            Metric = metric,
            ResultsDirectory = section.String("results_dir") ?? "autotuning_results",
            MinMicroBatch = min,
            MaxMicroBatch = max,
            TuningMicroBatchSizes = section.Int32("num_tuning_micro_batch_sizes", AutoRule.NotAllowed, min: 1) ?? 3,
            MaxTrials = section.Int32("tuner_num_trials", AutoRule.NotAllowed, min: 1) ?? 50,
        };

        foreach (string key in new[] { "tuner_type", "tuner_early_stopping", "fast", "overwrite", "exps_dir", "max_train_batch_size", "min_train_batch_size", "mp_size" })
        {
            if (section.TryTake(key, out _))
                section.Warning(key, "read and not used: Shardwise times every candidate of the search space (a grid search), in this job");
        }

        foreach (string key in new[] { "num_gpus", "num_nodes", "arg_mappings", "model_info", "model_info_path" })
        {
            if (section.TryTake(key, out _))
                section.Warning(key, "launcher or script setting with no effect here: tune runs in the job it is started in (under mpirun, every rank)");
        }

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }

    /// <summary>DeepSpeed's key, or the shorter spelling some configs use (config 09's start_step), with a warning.</summary>
    private static int? ReadStep(JsonSection section, string key, string alias)
    {
        if (section.Int32(key, AutoRule.NotAllowed, min: 1) is { } value) return value;
        if (section.Int32(alias, AutoRule.NotAllowed, min: 1) is not { } aliased) return null;
        section.Warning(alias, $"read as {key} (DeepSpeed's name for it)");
        return aliased;
    }
}
