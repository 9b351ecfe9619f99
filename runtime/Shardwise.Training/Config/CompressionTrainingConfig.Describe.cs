using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Shardwise.Training.Config;

public sealed partial record CompressionTrainingConfig
{
    /// <summary>
    /// One line for --print-config and the trainer's log: each technique that is on, with its groups and schedule, e.g.
    /// "weight quantization: wq1 8→4 bits every 50 updates (symmetric, nearest, ...); sparse pruning l1: sp1 keeps 0.5 (from update 1000)".
    /// </summary>
    public string Describe()
    {
        var parts = new List<string>();
        if (WeightQuantization.Enabled) parts.Add(Describe(WeightQuantization));
        if (SparsePruning.Enabled) parts.Add("sparse pruning " + Describe(SparsePruning, "weights"));
        if (RowPruning.Enabled) parts.Add("row pruning " + Describe(RowPruning, "rows"));
        if (HeadPruning.Enabled) parts.Add($"head pruning of {Count(HeadPruning.NumHeads ?? 0, "head")} " + Describe(HeadPruning, "heads"));
        if (ActivationQuantization.Enabled) parts.Add(ActivationQuantization.Describe());
        if (LayerReduction.Enabled) parts.Add(LayerReduction.Describe());
        return parts.Count == 0 ? "off" : string.Join("; ", parts);
    }

    private static string Describe(WeightQuantizationConfig quantization)
    {
        string source = quantization.Source == WeightQuantizationConfig.SectionPath ? "" : $" (from {quantization.Source})";
        string groups = string.Join(", ", quantization.Groups.Select(group => quantization.InForward
            ? $"{group.Modules.Name} {group.TargetBits} bits"
            : $"{group.Modules.Name} {group.StartBits}→{group.TargetBits} bits every {Count(group.QuantizationPeriod, "update")}"));
        var settings = new List<string>
        {
            quantization.Type.ToString().ToLowerInvariant(),
            quantization.Rounding.ToString().ToLowerInvariant(),
            Count(quantization.QuantizeGroups, "scale group") + " per tensor",
            $"from update {quantization.ScheduleOffset.ToString(CultureInfo.InvariantCulture)}",
            quantization.InForward ? "in the forward" : "after each update",
        };
        if (quantization.MixedFp16 && !quantization.InForward)
            settings.Add($"fp16 mixing, ratio −{quantization.ChangeRatio.ToString("R", CultureInfo.InvariantCulture)} per update");
        return $"weight quantization{source}: {groups} ({string.Join(", ", settings)})";
    }

    private static string Describe(PruningConfig pruning, string unit)
    {
        string groups = string.Join(", ", pruning.Groups.Select(group =>
            $"{group.Modules.Name} keeps {group.DenseRatio.ToString("R", CultureInfo.InvariantCulture)} of its {unit}"));
        return $"{pruning.Method}: {groups} (from update {pruning.ScheduleOffset.ToString(CultureInfo.InvariantCulture)})";
    }

    private static string Count(long count, string noun) => $"{count.ToString(CultureInfo.InvariantCulture)} {noun}{(count == 1 ? "" : "s")}";
}
