using System;
using System.Collections.Generic;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// The "zero_optimization" section (deepspeed/runtime/zero/config.py). Sizes are element counts.
/// Values that only stage 3 reads are kept as written but warned about (and offload_param disabled)
/// below stage 3, as DeepSpeed ignores them there too.
/// </summary>
public sealed record ZeroOptimizationConfig
{
    private static readonly string[] Stage3OnlyKeys =
    [
        "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold", "stage3_max_live_parameters",
        "stage3_max_reuse_distance", "stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save",
        "zero_quantized_weights", "zero_quantized_gradients", "zero_hpz_partition_size",
    ];

    /// <summary>0 = plain data parallel, 1 = optimizer states, 2 = +gradients, 3 = +parameters.</summary>
    public required int Stage { get; init; }

    public required OffloadConfig OffloadOptimizer { get; init; }

    public required OffloadConfig OffloadParam { get; init; }

    public required bool OverlapComm { get; init; }

    public required bool ContiguousGradients { get; init; }

    public required bool ReduceScatter { get; init; }

    public required bool AllgatherPartitions { get; init; }

    public required long ReduceBucketSize { get; init; }

    public required long AllgatherBucketSize { get; init; }

    public required long Stage3PrefetchBucketSize { get; init; }

    public required long Stage3ParamPersistenceThreshold { get; init; }

    public required long Stage3MaxLiveParameters { get; init; }

    public required long Stage3MaxReuseDistance { get; init; }

    public required bool Stage3Gather16BitWeightsOnModelSave { get; init; }

    public required long SubGroupSize { get; init; }

    public required bool ElasticCheckpoint { get; init; }

    public required bool RoundRobinGradients { get; init; }

    /// <summary>ZeRO++ qwZ: ZeRO-3's parameter gathers send int8 blocks (zero_quantized_weights).</summary>
    public bool QuantizedWeights { get; init; }

    /// <summary>ZeRO++ qgZ: ZeRO-3's gradient reduction sends int4 blocks through an all-to-all (zero_quantized_gradients).</summary>
    public bool QuantizedGradients { get; init; }

    /// <summary>
    /// ZeRO++ hpZ: ranks per secondary partition (zero_hpz_partition_size; 1 = off). Backward gathers parameters from a
    /// copy partitioned over groups of this many consecutive ranks (a node) instead of over every rank.
    /// </summary>
    public int HpzPartitionSize { get; init; } = 1;

    /// <summary>stage as a list (autotuning's search space; <see cref="Stage"/> is its first entry); null when it is one number.</summary>
    public IReadOnlyList<int>? StageCandidates { get; init; }

    internal static ZeroOptimizationConfig Read(JsonSection parent, ConfigOverrides overrides, bool tuning = false)
    {
        const string Key = "zero_optimization";
        if (parent.TryTake(Key, out var raw) && raw.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            // Pre-0.3 DeepSpeed: a boolean, true meaning stage 1.
            var legacyStage = raw.ValueKind == JsonValueKind.True ? 1 : 0;
            parent.Warning(Key, $"legacy boolean form, read as {{\"stage\": {legacyStage}}}; write the object form");
            return ReadSection(JsonSection.Empty(parent.PathOf(Key), parent.Diagnostics), overrides, legacyStage, tuning);
        }

        return ReadSection(parent.Section(Key), overrides, stageOverride: null, tuning);
    }

    private static ZeroOptimizationConfig ReadSection(JsonSection section, ConfigOverrides overrides, int? stageOverride, bool tuning)
    {
        IReadOnlyList<int>? stageCandidates = null;
        var stage = stageOverride ?? section.Int32OrCandidates("stage", AutoRule.NotAllowed, tuning, out stageCandidates, min: 0, max: 3) ?? ConfigDefaults.ZeroStage;
        var offloadOptimizer = ReadOptimizerOffload(section);
        var offloadParam = ReadParamOffload(section);

        // Hugging Face sizes "auto" buckets from the hidden size h: h², 0.9·h², 10·h.
        long? h = overrides.HiddenSize;
        const string HiddenHint = "pass --hidden-size to size it like Hugging Face";
        var config = new ZeroOptimizationConfig
        {
            Stage = stage,
            StageCandidates = stageCandidates,
            OffloadOptimizer = offloadOptimizer,
            OffloadParam = offloadParam,
            OverlapComm = section.Bool("overlap_comm") ?? ConfigDefaults.OverlapComm(stage),
            ContiguousGradients = section.Bool("contiguous_gradients") ?? ConfigDefaults.ContiguousGradients,
            ReduceScatter = section.Bool("reduce_scatter") ?? ConfigDefaults.ReduceScatter,
            AllgatherPartitions = section.Bool("allgather_partitions") ?? ConfigDefaults.AllgatherPartitions,
            ReduceBucketSize = section.Integer("reduce_bucket_size", AutoRule.FromCallerOrFallback(h * h, ConfigDefaults.ReduceBucketSize, HiddenHint), min: 1)
                ?? ConfigDefaults.ReduceBucketSize,
            AllgatherBucketSize = section.Integer("allgather_bucket_size", AutoRule.NotAllowed, min: 1) ?? ConfigDefaults.AllgatherBucketSize,
            Stage3PrefetchBucketSize = section.Integer("stage3_prefetch_bucket_size", AutoRule.FromCallerOrFallback(h is { } hidden ? Math.Floor(0.9 * hidden * hidden) : null, ConfigDefaults.Stage3PrefetchBucketSize, HiddenHint), min: 0)
                ?? ConfigDefaults.Stage3PrefetchBucketSize,
            Stage3ParamPersistenceThreshold = section.Integer("stage3_param_persistence_threshold", AutoRule.FromCallerOrFallback(10 * h, ConfigDefaults.Stage3ParamPersistenceThreshold, HiddenHint), min: 0)
                ?? ConfigDefaults.Stage3ParamPersistenceThreshold,
            Stage3MaxLiveParameters = section.Integer("stage3_max_live_parameters", AutoRule.NotAllowed, min: 0) ?? ConfigDefaults.Stage3MaxLiveParameters,
            // DeepSpeed keeps a gathered parameter while its next use is at most this many elements away, so a
            // negative distance (config 25's -1) is valid: it keeps none.
            Stage3MaxReuseDistance = section.Integer("stage3_max_reuse_distance", AutoRule.NotAllowed) ?? ConfigDefaults.Stage3MaxReuseDistance,
            Stage3Gather16BitWeightsOnModelSave = ReadGather16Bit(section),
            SubGroupSize = section.Integer("sub_group_size", AutoRule.NotAllowed, min: 1) ?? ConfigDefaults.SubGroupSize,
            ElasticCheckpoint = section.Bool("elastic_checkpoint") ?? ConfigDefaults.ElasticCheckpoint,
            RoundRobinGradients = section.Bool("round_robin_gradients") ?? ConfigDefaults.RoundRobinGradients,
            QuantizedWeights = section.Bool("zero_quantized_weights") ?? false,
            QuantizedGradients = section.Bool("zero_quantized_gradients") ?? false,
            HpzPartitionSize = section.Int32("zero_hpz_partition_size", AutoRule.NotAllowed, min: 1) ?? 1,
        };
        if (section.Bool("zero_quantized_nontrainable_weights") == true)
            section.Warning("zero_quantized_nontrainable_weights", "has no effect: every parameter of a Shardwise model is trained, so none is frozen to keep quantized");

        config = IgnoreWhatThisStageDoesNotUse(section, config);
        UnsupportedFeaturePolicy.ReportLeftovers(section, UnsupportedFeaturePolicy.ZeroOptimization, UnsupportedFeaturePolicy.ZeroAcceptedNoEffect);
        return config;
    }

    private static OffloadConfig ReadOptimizerOffload(JsonSection section)
    {
        // Legacy (DeepSpeed < 0.5) boolean: "cpu_offload": true.
        var legacy = section.Bool("cpu_offload");
        if (legacy is null)
        {
            return OffloadConfig.Read(section, "offload_optimizer", forParameters: false);
        }

        if (section.Has("offload_optimizer"))
        {
            section.Error("cpu_offload", "legacy key conflicts with offload_optimizer; keep only offload_optimizer");
            return OffloadConfig.Read(section, "offload_optimizer", forParameters: false);
        }

        section.Warning("cpu_offload", $"legacy key, read as offload_optimizer.device = \"{(legacy.Value ? "cpu" : "none")}\"");
        section.TryTake("offload_optimizer", out _);
        var pinned = section.Bool("cpu_offload_use_pin_memory") ?? ConfigDefaults.PinMemory;
        return OffloadConfig.Disabled(forParameters: false) with
        {
            Device = legacy.Value ? OffloadDevice.Cpu : OffloadDevice.None,
            PinMemory = pinned,
        };
    }

    private static OffloadConfig ReadParamOffload(JsonSection section)
    {
        var legacy = section.Bool("cpu_offload_params");
        if (legacy is null || section.Has("offload_param"))
        {
            if (legacy is not null)
            {
                section.Error("cpu_offload_params", "legacy key conflicts with offload_param; keep only offload_param");
            }

            return OffloadConfig.Read(section, "offload_param", forParameters: true);
        }

        section.Warning("cpu_offload_params", $"legacy key, read as offload_param.device = \"{(legacy.Value ? "cpu" : "none")}\"");
        section.TryTake("offload_param", out _);
        return OffloadConfig.Disabled(forParameters: true) with { Device = legacy.Value ? OffloadDevice.Cpu : OffloadDevice.None };
    }

    private static bool ReadGather16Bit(JsonSection section)
    {
        const string Current = "stage3_gather_16bit_weights_on_model_save";
        const string Deprecated = "stage3_gather_fp16_weights_on_model_save";
        var current = section.Bool(Current);
        var deprecated = section.Bool(Deprecated);
        if (deprecated is not null)
        {
            if (current is not null)
            {
                section.Error(Deprecated, $"deprecated alias given together with {Current}; keep only {Current}");
            }
            else
            {
                section.Warning(Deprecated, $"deprecated alias of {Current}; read as that");
            }
        }

        return current ?? deprecated ?? ConfigDefaults.Stage3Gather16BitWeightsOnModelSave;
    }

    private static ZeroOptimizationConfig IgnoreWhatThisStageDoesNotUse(JsonSection section, ZeroOptimizationConfig config)
    {
        if (config.Stage < 3)
        {
            foreach (var key in Stage3OnlyKeys)
            {
                if (section.Has(key))
                {
                    section.Warning(key, $"applies only to ZeRO stage 3; ignored at stage {config.Stage}");
                }
            }

            if (config.OffloadParam.IsEnabled)
            {
                section.Warning("offload_param", $"parameter offload needs ZeRO stage 3; ignored at stage {config.Stage}");
                config = config with { OffloadParam = OffloadConfig.Disabled(forParameters: true) };
            }
        }

        if (config.Stage == 0 && config.OffloadOptimizer.IsEnabled)
        {
            section.Warning("offload_optimizer", "optimizer offload needs ZeRO stage 1-3; ignored at stage 0");
            config = config with { OffloadOptimizer = OffloadConfig.Disabled(forParameters: false) };
        }

        return config;
    }
}
