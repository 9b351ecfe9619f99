using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Training.Config;

namespace Shardwise.Training.ModelCompression;

/// <summary>
/// activation_quantization at run time: the backend asks, before each Linear product and weight gradient, whether
/// the layer's weight is one a group matched, and if so multiplies Q(x), each row (token) of x on DeepSpeed's grid
/// over its own range (<see cref="WeightQuantizer"/> with one group per row, nearest rounding), from the technique's
/// schedule_offset on. Q(x) is a pure function of x, so the backward's weight gradient sees the forward's values.
/// </summary>
public sealed class ActivationQuantizer : IActivationQuantizer
{
    private readonly Dictionary<long, int> _bitsByWeightOffset;
    private readonly IReadOnlyList<CompressedModule> _modules;

    private ActivationQuantizer(ActivationQuantizationConfig config, IReadOnlyList<CompressedModule> modules)
    {
        Config = config;
        _modules = modules;
        _bitsByWeightOffset = modules.ToDictionary(m => m.WeightOffset, m => m.ActivationBits!.Value);
    }

    public ActivationQuantizationConfig Config { get; }

    /// <summary>The updates applied so far (the engine's schedule step); 0 until an engine sets it.</summary>
    public Func<long> AppliedUpdates { get; set; } = () => 0;

    /// <summary>The quantized layers, by weight offset in the parameter arena, with their bits.</summary>
    public IReadOnlyDictionary<long, int> Layers => _bitsByWeightOffset;

    /// <summary>The quantizer the config asks for over <paramref name="layout"/>; null when activation quantization is off.</summary>
    public static ActivationQuantizer? For(DeepSpeedConfig config, ParameterLayout layout)
    {
        if (config.CompressionTraining?.ActivationQuantization is not { Enabled: true } activation) return null;
        // Layers are recognised by their weights' places in the parameter arena, which ZeRO-3 replaces by gathered copies.
        if (config.ZeroOptimization.Stage >= 3)
            throw new NotSupportedException($"{ActivationQuantizationConfig.SectionPath} finds its layers by their weights in the parameter arena, which zero_optimization.stage 3 partitions: use stage 0, 1 or 2");
        var plan = CompressionPlan.For(layout, config.CompressionTraining!, everyPatternMatches: false);
        return new ActivationQuantizer(activation, plan.Modules.Where(m => m.ActivationBits is not null).ToList());
    }

    /// <summary>The run's header line: which Linear layers' inputs are quantized, to what, from when.</summary>
    public string Describe() =>
        $"compression: activation quantization ({Config.Type.ToString().ToLowerInvariant()}, each token's range, from update {Config.ScheduleOffset}) of "
        + $"{_modules.Count} Linear layer(s): {string.Join(", ", _modules.Select(m => $"{m.Name} {m.ActivationBits} bits"))}";

    public bool Quantizes(Slice weight) =>
        weight.Arena == Arena.Parameters && _bitsByWeightOffset.ContainsKey(weight.Offset) && AppliedUpdates() >= Config.ScheduleOffset;

    public (int Bits, bool Asymmetric) GridOf(Slice weight) => (BitsOf(weight), Config.Type == QuantizationType.Asymmetric);

    public void Quantize(Slice weight, ReadOnlySpan<float> x, Span<float> into, int rows, int inDim)
    {
        int bits = BitsOf(weight);
        x.CopyTo(into);
        WeightQuantizer.Quantize(into, rows, bits, Config.Type, QuantizationRounding.Nearest, 0);
    }

    private int BitsOf(Slice weight) => _bitsByWeightOffset.TryGetValue(weight.Offset, out int bits)
        ? bits
        : throw new ArgumentException($"no activation quantization for the Linear whose weight is at {weight.Offset}", nameof(weight));
}
