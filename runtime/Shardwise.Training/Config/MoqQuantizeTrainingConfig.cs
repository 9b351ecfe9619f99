using System.Collections.Generic;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// The legacy top-level "quantize_training" section (DeepSpeed's MoQ, runtime/quantize.py), read as the update-time mode
/// of <see cref="WeightQuantizationConfig"/>: one group over every module, its bits annealing from start_bits to
/// target_bits. DeepSpeed's MoQ is on whenever the section is present (its "enabled" defaults to the section's presence),
/// so here it is on when "enabled" is true, or when "enabled" is absent and quantize_bits is given.
/// </summary>
internal static class MoqQuantizeTrainingConfig
{
    public const string Key = "quantize_training";
    public const string SectionPath = "$." + Key;

    // DeepSpeed's MoQ defaults (runtime/constants.py: QUANTIZE_*_DEFAULT).
    private const int DefaultStartBits = 16;
    private const int DefaultTargetBits = 8;
    private const int DefaultPeriod = 1000;
    private const long DefaultScheduleOffset = 1000;

    private const string EigenvalueNotBuilt = "eigenvalue-scaled quantization periods are not built: every layer keeps quantize_period, unscaled";

    /// <summary>The MoQ settings; null when the section is absent or off (then nothing else in it is read).</summary>
    public static WeightQuantizationConfig? Read(JsonSection root)
    {
        if (!root.TryTake(Key, out var raw)) return null;
        var section = root.Section(Key);
        if (raw.ValueKind != JsonValueKind.Object || !IsOn(section))
        {
            section.SkipRest();
            return null;
        }

        var bits = section.Section("quantize_bits");
        int start = WeightQuantizationConfig.ReadBits(bits, "start_bits") ?? DefaultStartBits;
        int target = WeightQuantizationConfig.ReadBits(bits, "target_bits") ?? DefaultTargetBits;
        UnsupportedFeaturePolicy.ReportLeftovers(bits);

        var schedule = section.Section("quantize_schedule");
        int period = schedule.Int32("quantize_period", AutoRule.NotAllowed, min: 1) ?? DefaultPeriod;
        long offset = schedule.Integer("schedule_offset", AutoRule.NotAllowed, min: 0) ?? DefaultScheduleOffset;
        UnsupportedFeaturePolicy.ReportLeftovers(schedule);

        int quantizeGroups = section.Int32("quantize_groups", AutoRule.NotAllowed, min: 1) ?? 1;
        var (type, rounding, advice) = ReadAlgorithm(section);
        var (mixed, ratio) = WeightQuantizationConfig.ReadFp16Mixing(section);
        bool verbose = section.Bool("quantize_verbose") ?? false;
        if (section.Bool("quantizer_kernel") == true)
            section.Warning("quantizer_kernel", "has no effect: it picks DeepSpeed's fused CUDA quantizer, which computes the same quantization; Shardwise always uses its own");
        ReadEigenvalue(section);
        WeightQuantizationConfig.CheckBits(bits, start, target, type, rounding, advice);
        UnsupportedFeaturePolicy.ReportLeftovers(section);

        var everyModule = new CompressionModuleGroup(Key, SectionPath, [CompressionModulePatterns.EveryModule], null);
        return new WeightQuantizationConfig
        {
            Enabled = true,
            Source = SectionPath,
            ScheduleOffset = offset,
            QuantizeGroups = quantizeGroups,
            Type = type,
            Rounding = rounding,
            InForward = false,
            MixedFp16 = mixed,
            ChangeRatio = ratio,
            Verbose = verbose,
            Groups = [new WeightQuantizationGroup(everyModule, start, target, period)],
        };
    }

    /// <summary>"enabled" when given; otherwise on exactly when quantize_bits says what to quantize to.</summary>
    private static bool IsOn(JsonSection section)
    {
        if (section.Bool("enabled") is { } enabled) return enabled;
        if (section.Has("quantize_bits")) return true;
        section.Diagnostics.Warning(section.Path, "has neither \"enabled\" nor \"quantize_bits\", so MoQ stays off; ignored");
        return false;
    }

    /// <summary>
    /// The quantization type and rounding. DeepSpeed documents them in quantize_algo (q_type, rounding); older configs
    /// write quantize_type and quantize_rounding at the section's level, by name or as DeepSpeed's 0/1 codes. Both
    /// spellings are read; when both are given they must agree.
    /// </summary>
    private static (QuantizationType Type, QuantizationRounding Rounding, WeightQuantizationConfig.LowBitsAdvice Advice) ReadAlgorithm(JsonSection section)
    {
        var algorithm = section.Section("quantize_algo");
        string? type = ReadAgreeing(section, "quantize_type", algorithm, "q_type", CompressionChoices.QuantizationTypes, "a quantization type", out string typePath);
        string? rounding = ReadAgreeing(section, "quantize_rounding", algorithm, "rounding", CompressionChoices.Roundings, "a rounding", out string roundingPath);
        UnsupportedFeaturePolicy.ReportLeftovers(algorithm);
        return (CompressionChoices.ToQuantizationType(type), CompressionChoices.ToRounding(rounding), new(typePath, roundingPath));
    }

    /// <summary>One setting with two spellings; <paramref name="path"/> is where it was set (quantize_algo's when neither).</summary>
    private static string? ReadAgreeing(JsonSection section, string legacyKey, JsonSection algorithm, string algorithmKey, IReadOnlyList<string> known, string what, out string path)
    {
        string? legacy = ReadNameOrCode(section, legacyKey, known, what);
        string? documented = ReadNameOrCode(algorithm, algorithmKey, known, what);
        path = legacy is not null && documented is null ? section.PathOf(legacyKey) : algorithm.PathOf(algorithmKey);
        if (legacy is not null && documented is not null && legacy != documented)
            algorithm.Error(algorithmKey, $"\"{documented}\" disagrees with {section.PathOf(legacyKey)} (\"{legacy}\"): set one of them");
        return documented ?? legacy;
    }

    /// <summary>A name of <paramref name="known"/>, or its index, as DeepSpeed's MoQ codes them (0 symmetric / nearest, 1 asymmetric / stochastic).</summary>
    private static string? ReadNameOrCode(JsonSection section, string key, IReadOnlyList<string> known, string what)
    {
        if (section.TryTake(key, out var value) && value.ValueKind == JsonValueKind.Number)
        {
            if (value.TryGetInt32(out int code) && code >= 0 && code < known.Count) return known[code];
            section.Error(key, $"{value.GetRawText()} is not {what}: use {CompressionChoices.Alternatives(known)} (or DeepSpeed's codes 0 and 1)");
            return null;
        }

        return CompressionChoices.Read(section, key, known, what);
    }

    /// <summary>
    /// quantize_eigenvalue, and the "eigenvalue" section DeepSpeed reads inside quantize_training: both ask for MoQ's
    /// eigenvalue-scaled periods, which are not built (recent DeepSpeed asserts them off too), so they warn and the
    /// period stays as written. The eigenvalue analysis settings are then unused.
    /// </summary>
    private static void ReadEigenvalue(JsonSection section)
    {
        if (section.Bool("quantize_eigenvalue") == true) section.Warning("quantize_eigenvalue", EigenvalueNotBuilt);
        var eigenvalue = section.Section("eigenvalue");
        if (eigenvalue.Bool("enabled") == true) eigenvalue.Warning("enabled", EigenvalueNotBuilt);
        eigenvalue.SkipRest();
    }
}
