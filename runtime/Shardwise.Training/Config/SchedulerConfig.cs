using System;

namespace Shardwise.Training.Config;

public enum SchedulerType
{
    WarmupLR,
    WarmupDecayLR,
    WarmupCosineLR,
    OneCycle,
    LRRangeTest,
}

public enum WarmupType
{
    Log,
    Linear,
}

/// <summary>
/// The "scheduler" section (deepspeed/runtime/lr_schedules.py). Absent means a constant learning rate.
/// WarmupLR/WarmupDecayLR ramp between absolute rates (warmup_min_lr → warmup_max_lr, which replaces the
/// optimizer's lr); WarmupCosineLR works in ratios of the optimizer's lr.
/// </summary>
public sealed record SchedulerConfig
{
    public required SchedulerType Type { get; init; }

    public required double WarmupMinLr { get; init; }

    public required double WarmupMaxLr { get; init; }

    /// <summary>As written; the schedules clamp it to at least 2 exactly as DeepSpeed does.</summary>
    public required long WarmupNumSteps { get; init; }

    public required WarmupType WarmupType { get; init; }

    /// <summary>Required by WarmupDecayLR and WarmupCosineLR; null for WarmupLR.</summary>
    public required long? TotalNumSteps { get; init; }

    public required double WarmupMinRatio { get; init; }

    public required double CosMinRatio { get; init; }

    /// <summary>OneCycle's parameters; null for the other types.</summary>
    public OneCycleConfig? OneCycle { get; init; }

    /// <summary>LRRangeTest's parameters; null for the other types.</summary>
    public LrRangeTestConfig? LrRangeTest { get; init; }

    internal static SchedulerConfig? Read(JsonSection parent, ConfigOverrides overrides)
    {
        if (!parent.Has("scheduler"))
        {
            parent.TryTake("scheduler", out _);
            return null;
        }

        var section = parent.Section("scheduler");
        var type = ParseType(section, section.String("type"));
        if (type is null)
        {
            section.TryTake("params", out _);
            return null;
        }

        var parameters = section.Section("params");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        if (type is SchedulerType.OneCycle or SchedulerType.LRRangeTest)
        {
            var oneCycle = type == SchedulerType.OneCycle ? OneCycleConfig.Read(parameters) : null;
            var rangeTest = type == SchedulerType.LRRangeTest ? LrRangeTestConfig.Read(parameters) : null;
            IgnoreLastBatchIteration(parameters);
            UnsupportedFeaturePolicy.ReportLeftovers(parameters);
            return new SchedulerConfig
            {
                Type = type.Value,
                WarmupMinLr = ConfigDefaults.WarmupMinLr,
                WarmupMaxLr = ConfigDefaults.WarmupMaxLr,
                WarmupNumSteps = ConfigDefaults.WarmupNumSteps,
                WarmupType = WarmupType.Log,
                TotalNumSteps = null,
                WarmupMinRatio = ConfigDefaults.WarmupMinRatio,
                CosMinRatio = ConfigDefaults.CosMinRatio,
                OneCycle = oneCycle,
                LrRangeTest = rangeTest,
            };
        }

        var isCosine = type == SchedulerType.WarmupCosineLR;
        double minLr = ConfigDefaults.WarmupMinLr, maxLr = ConfigDefaults.WarmupMaxLr;
        double minRatio = ConfigDefaults.WarmupMinRatio, cosMinRatio = ConfigDefaults.CosMinRatio;
        if (isCosine)
        {
            minRatio = parameters.Number("warmup_min_ratio", AutoRule.NotAllowed) ?? minRatio;
            cosMinRatio = parameters.Number("cos_min_ratio", AutoRule.NotAllowed) ?? cosMinRatio;
            RequireRatio(parameters, "warmup_min_ratio", minRatio);
            RequireRatio(parameters, "cos_min_ratio", cosMinRatio);
        }
        else
        {
            // Hugging Face resolves warmup_min_lr "auto" to 0 and warmup_max_lr "auto" to the learning rate.
            minLr = parameters.Number("warmup_min_lr", AutoRule.ResolvedAs(0.0)) ?? minLr;
            maxLr = parameters.Number("warmup_max_lr", AutoRule.FromCaller(overrides.LearningRate, "pass --lr")) ?? maxLr;
            RequireNonNegative(parameters, "warmup_min_lr", minLr);
            RequireNonNegative(parameters, "warmup_max_lr", maxLr);
        }

        var warmupSteps = parameters.Integer("warmup_num_steps", AutoRule.FromCaller(overrides.WarmupSteps, "pass --warmup-steps"), min: 0)
            ?? ConfigDefaults.WarmupNumSteps;
        var warmupType = ParseWarmupType(parameters, parameters.String("warmup_type") ?? ConfigDefaults.WarmupType);
        var totalSteps = type == SchedulerType.WarmupLR ? null : ReadTotalSteps(parameters, type.Value, warmupSteps, overrides);
        IgnoreLastBatchIteration(parameters);
        UnsupportedFeaturePolicy.ReportLeftovers(parameters);
        return new SchedulerConfig
        {
            Type = type.Value,
            WarmupMinLr = minLr,
            WarmupMaxLr = maxLr,
            WarmupNumSteps = warmupSteps,
            WarmupType = warmupType,
            TotalNumSteps = totalSteps,
            WarmupMinRatio = minRatio,
            CosMinRatio = cosMinRatio,
        };
    }

    private static void IgnoreLastBatchIteration(JsonSection parameters)
    {
        if (parameters.Integer("last_batch_iteration", AutoRule.NotAllowed) is { } last && last != -1)
        {
            parameters.Warning("last_batch_iteration", "ignored: Shardwise resumes the schedule from the checkpoint's step count");
        }
    }

    private const string SupportedTypes = "WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle or LRRangeTest";

    private static SchedulerType? ParseType(JsonSection section, string? typeName)
    {
        if (typeName is null)
        {
            section.Diagnostics.ErrorSentence(section.PathOf("type"), $"is required ({SupportedTypes})");
            return null;
        }

        foreach (var type in Enum.GetValues<SchedulerType>())
        {
            if (string.Equals(type.ToString(), typeName, StringComparison.OrdinalIgnoreCase))
            {
                return type;
            }
        }

        section.Error("type", UnsupportedFeaturePolicy.UnsupportedSchedulers.Contains(typeName)
            ? UnsupportedFeaturePolicy.ErrorMessage($"scheduler \"{typeName}\"", $"use {SupportedTypes}")
            : $"unknown scheduler \"{typeName}\"; Shardwise supports {SupportedTypes}");
        return null;
    }

    private static WarmupType ParseWarmupType(JsonSection parameters, string name)
    {
        switch (name)
        {
            case "log":
                return WarmupType.Log;
            case "linear":
                return WarmupType.Linear;
            default:
                // DeepSpeed silently falls back to "log"; a typo here would quietly change the LR curve.
                parameters.Error("warmup_type", $"unknown warmup type \"{name}\"; use \"log\" or \"linear\"");
                return WarmupType.Log;
        }
    }

    private static long? ReadTotalSteps(JsonSection parameters, SchedulerType type, long warmupSteps, ConfigOverrides overrides)
    {
        const string Key = "total_num_steps";
        var total = parameters.Integer(Key, AutoRule.FromCaller(overrides.TotalSteps, "pass --total-steps"));
        if (total is null && !parameters.IsAuto(Key))
        {
            total = overrides.TotalSteps;
            if (total is null)
            {
                parameters.Diagnostics.ErrorSentence(parameters.PathOf(Key), $"is required for {type}: set it or pass --total-steps");
                return null;
            }
        }

        // DeepSpeed only logs a warning, then divides by (total - warmup): zero or negative makes no schedule.
        var effectiveWarmup = Math.Max(2, warmupSteps);
        if (total is { } t && t <= effectiveWarmup)
        {
            parameters.Error(Key, $"({t}) must be greater than warmup_num_steps ({effectiveWarmup}, after DeepSpeed's minimum of 2)");
        }

        return total;
    }

    private static void RequireRatio(JsonSection parameters, string key, double value)
    {
        if (value is < 0 or > 1 || double.IsNaN(value))
        {
            parameters.Error(key, $"{JsonSection.Format(value)} is out of range: must be between 0 and 1");
        }
    }

    private static void RequireNonNegative(JsonSection parameters, string key, double value)
    {
        if (value < 0 || double.IsNaN(value))
        {
            parameters.Error(key, $"{JsonSection.Format(value)} is out of range: must be >= 0");
        }
    }
}
