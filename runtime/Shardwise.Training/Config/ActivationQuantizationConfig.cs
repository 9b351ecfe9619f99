using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Training.Config;

/// <summary>An activation_quantization group: the Linear layers whose inputs it quantizes, and to how many bits.</summary>
public sealed record ActivationQuantizationGroup(CompressionModuleGroup Modules, int Bits);

/// <summary>
/// compression_training.activation_quantization (DeepSpeed's LinearLayer_Compress): from schedule_offset on, each
/// matched Linear layer multiplies Q(x) instead of x, its weight gradient taken from Q(x) and its input gradient passed
/// straight through. range_calibration "dynamic" (DeepSpeed's default) gives every row (token) of x its own range, as
/// DeepSpeed's num_groups = numel / size(-1) does; "static" (a running range kept per layer) is refused.
/// </summary>
public sealed record ActivationQuantizationConfig
{
    public const string SectionPath = CompressionTrainingConfig.SectionPath + ".activation_quantization";

    public bool Enabled { get; init; }

    public QuantizationType Type { get; init; } = QuantizationType.Symmetric;

    /// <summary>Applied updates before the inputs are quantized (default 1000, as DeepSpeed's).</summary>
    public long ScheduleOffset { get; init; } = 1000;

    public IReadOnlyList<ActivationQuantizationGroup> Groups { get; init; } = [];

    internal static ActivationQuantizationConfig Read(JsonSection compression)
    {
        var technique = CompressionTechnique.Open(compression, "activation_quantization");
        string type = CompressionChoices.Read(technique.Shared, "quantization_type", CompressionChoices.QuantizationTypes, "a quantization type") ?? "symmetric";
        string range = CompressionChoices.Read(technique.Shared, "range_calibration", ["dynamic", "static"], "a range calibration") ?? "dynamic";
        if (technique.Enabled && range == "static")
            technique.Shared.Error("range_calibration", UnsupportedFeaturePolicy.ErrorMessage(
                "range_calibration \"static\" (a running min/max per layer, momentum 0.95, which each rank would keep apart)", "use \"dynamic\" (each token's own range, DeepSpeed's default)"));
        long offset = technique.Shared.Integer("schedule_offset", AutoRule.NotAllowed, min: 0) ?? 1000;
        var groups = technique.ReadGroups((modules, parameters) =>
        {
            technique.Require(parameters, "bits");
            int bits = parameters.Int32("bits", AutoRule.NotAllowed, min: 1) ?? 8;
            // DeepSpeed's enable_activation_quantization asserts this.
            if (bits != 4 && bits != 8) parameters.Error("bits", $"{bits} bits: activation quantization takes 4 or 8 (DeepSpeed asserts this too)");
            return new ActivationQuantizationGroup(modules, bits);
        });
        technique.ReportLeftovers();
        return new ActivationQuantizationConfig
        {
            Enabled = technique.Enabled,
            Type = type == "asymmetric" ? QuantizationType.Asymmetric : QuantizationType.Symmetric,
            ScheduleOffset = offset,
            Groups = technique.Enabled ? groups : [],
        };
    }

    /// <summary>For --print-config: "activation quantization: aq1 8 bits (symmetric, per token, from update 0)".</summary>
    public string Describe() =>
        $"activation quantization: {string.Join(", ", Groups.Select(g => $"{g.Modules.Name} {g.Bits} bits"))} " +
        $"({Type.ToString().ToLowerInvariant()}, each token's range, from update {ScheduleOffset.ToString(System.Globalization.CultureInfo.InvariantCulture)})";
}
