using System;
using Shardwise.Precision;

namespace Shardwise.Training.Config;

/// <summary>
/// DeepSpeed's three top-level keys on how data-parallel gradients cross the wire:
/// <c>communication_data_type</c> (the element type of the reduction: "fp32", "fp16", or "bf16", older DeepSpeed's
/// "bfp16" too), <c>prescale_gradients</c> (divide by the rank count before the reduction instead of after it) and
/// <c>gradient_predivide_factor</c> (without prescaling: divide by this before the reduction and multiply by
/// factor/ranks after it, so an fp16 sum over many ranks stays in range). Unset, the host path reduces in fp32
/// (<see cref="DataType"/> null: at least as accurate as DeepSpeed's default of the gradients' own type) and a GPU's
/// NCCL path in the gradients' storage type.
/// </summary>
public sealed record GradientCommunicationConfig
{
    /// <summary>Nothing set: the defaults of DeepSpeed's keys.</summary>
    public static GradientCommunicationConfig Default { get; } = new();

    /// <summary>The element type on the wire, or null where communication_data_type is not set.</summary>
    public StorageType? DataType { get; init; }

    /// <summary>communication_data_type as DeepSpeed spells it ("fp32", "fp16", "bf16"), or null where it is not set.</summary>
    public string? DataTypeName => DataType switch
    {
        StorageType.Float16 => "fp16",
        StorageType.BFloat16 => "bf16",
        StorageType.Float32 => "fp32",
        _ => null,
    };

    public bool PrescaleGradients { get; init; }

    public double PredivideFactor { get; init; } = 1.0;

    /// <summary>Whether any of the three keys asks for something other than the backend's plain averaged reduction.</summary>
    public bool IsDefault => DataType is null && !PrescaleGradients && PredivideFactor == 1.0;

    /// <summary>
    /// Whether a GPU's NCCL reduction gives what is asked: it averages the gradient arena in its storage type, or in
    /// fp32 through a widened copy, with NCCL's average, which multiplies each value by 1/ranks before the sum: what
    /// prescale_gradients asks, and what a predivide factor is for (keeping a 16-bit sum in range), so either is
    /// honoured there up to rounding. A 16-bit wire other than the storage's takes the host path
    /// (<see cref="Zero.GradientReduction"/>).
    /// </summary>
    public bool NcclAveragesAsAsked(StorageType storage)
        => DataType is null || DataType == storage || DataType == StorageType.Float32;

    internal static GradientCommunicationConfig Read(JsonSection root)
    {
        StorageType? type = null;
        string? name = root.String("communication_data_type");
        if (name is not null)
        {
            type = name.ToLowerInvariant() switch
            {
                "fp32" => StorageType.Float32,
                "fp16" => StorageType.Float16,
                "bf16" or "bfp16" => StorageType.BFloat16,
                _ => null,
            };
            if (type is null)
                root.Error("communication_data_type", $"\"{name}\" is not a communication type: use \"fp32\", \"fp16\" or \"bf16\" (DeepSpeed takes the same; older releases spell bf16 \"bfp16\")");
        }

        bool prescale = root.Bool("prescale_gradients") ?? false;
        double factor = root.Number("gradient_predivide_factor", AutoRule.NotAllowed) ?? 1.0;
        if (!(factor > 0) || double.IsInfinity(factor))
        {
            root.Error("gradient_predivide_factor", $"{JsonSection.Format(factor)} is out of range: must be a finite number > 0 (1 = no predivision)");
            factor = 1.0;
        }
        else if (prescale && factor != 1.0)
        {
            root.Warning("gradient_predivide_factor", "has no effect with prescale_gradients true, which divides by the rank count before the reduction (DeepSpeed ignores it then too)");
        }

        return new GradientCommunicationConfig { DataType = type, PrescaleGradients = prescale, PredivideFactor = factor };
    }

    /// <summary>"bf16 on the wire, predivided by 8" and the like, for the start-up line and <c>plan</c>.</summary>
    public string Describe()
    {
        string wire = DataTypeName ?? "default type";
        string scaling = PrescaleGradients ? "prescaled by 1/ranks"
            : PredivideFactor != 1.0 ? FormattableString.Invariant($"predivided by {PredivideFactor:R}, then × {PredivideFactor:R}/ranks")
            : "averaged after the sum";
        return $"{wire} on the wire, {scaling}";
    }
}
