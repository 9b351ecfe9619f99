namespace Shardwise.Training.Config;

public sealed partial record WeightQuantizationConfig
{
    internal const string Key = "weight_quantization";

    /// <summary>
    /// The widest grid a group may ask for: the quantizer rounds the 16-bit working weights, so a grid of more than 16
    /// bits would leave them as they are.
    /// </summary>
    public const int MaxBits = 16;

    private const double DefaultChangeRatio = 0.001;

    /// <summary>compression_training.weight_quantization, with DeepSpeed's defaults (deepspeed/compression/constants.py).</summary>
    internal static WeightQuantizationConfig Read(JsonSection compression)
    {
        var technique = CompressionTechnique.Open(compression, Key);
        var shared = technique.Shared;
        if (shared.Bool("quantizer_kernel") == true)
            shared.Warning("quantizer_kernel", "has no effect: it picks DeepSpeed's fused CUDA quantizer, which computes the same quantization as its Python one; Shardwise always uses its own");
        long offset = shared.Integer("schedule_offset", AutoRule.NotAllowed, min: 0) ?? 0;
        int quantizeGroups = shared.Int32("quantize_groups", AutoRule.NotAllowed, min: 1) ?? 1;
        bool verbose = shared.Bool("quantize_verbose") ?? false;
        var type = CompressionChoices.ToQuantizationType(CompressionChoices.Read(shared, "quantization_type", CompressionChoices.QuantizationTypes, "a quantization type"));
        var rounding = CompressionChoices.ToRounding(CompressionChoices.Read(shared, "rounding", CompressionChoices.Roundings, "a rounding"));
        bool inForward = shared.Bool("quantize_weight_in_forward") ?? false;
        var (mixed, ratio) = ReadFp16Mixing(shared);
        if (inForward && mixed)
            shared.Warning("fp16_mixed_quantize", "has no effect with quantize_weight_in_forward: the forward quantizes to target_bits directly, with no fp16 mixing (as in DeepSpeed)");

        var lowBitsAdvice = new LowBitsAdvice(shared.PathOf("quantization_type"), shared.PathOf("rounding"));
        var groups = technique.ReadGroups((modules, parameters) => ReadGroup(technique, modules, parameters, type, rounding, lowBitsAdvice));
        technique.ReportLeftovers();
        return new WeightQuantizationConfig
        {
            Enabled = technique.Enabled,
            ScheduleOffset = offset,
            QuantizeGroups = quantizeGroups,
            Type = type,
            Rounding = rounding,
            InForward = inForward,
            MixedFp16 = mixed,
            ChangeRatio = ratio,
            Verbose = verbose,
            Groups = groups,
        };
    }

    /// <summary>
    /// One different_groups entry. quantize_weight_in_forward with start_bits != target_bits is accepted: the in-forward
    /// quantizer uses target_bits from the offset on and never anneals (DeepSpeed does the same), so start_bits and
    /// quantization_period then only matter to the update-time (MoQ) mode.
    /// </summary>
    private static WeightQuantizationGroup ReadGroup(CompressionTechnique technique, CompressionModuleGroup modules, JsonSection parameters,
        QuantizationType type, QuantizationRounding rounding, LowBitsAdvice advice)
    {
        technique.Require(parameters, "start_bits");
        technique.Require(parameters, "target_bits");
        int? start = ReadBits(parameters, "start_bits");
        int? target = ReadBits(parameters, "target_bits");
        int period = parameters.Int32("quantization_period", AutoRule.NotAllowed, min: 1) ?? 1;
        CheckBits(parameters, start, target, type, rounding, advice);
        return new WeightQuantizationGroup(modules, start ?? target ?? MaxBits, target ?? start ?? MaxBits, period);
    }

    /// <summary>A bit width from 1 to <see cref="MaxBits"/>; null when absent or out of range (reported).</summary>
    internal static int? ReadBits(JsonSection section, string key)
    {
        int? bits = section.Int32(key, AutoRule.NotAllowed);
        if (bits is not { } n || n is >= 1 and <= MaxBits) return bits;
        section.Error(key, $"{n} is out of range: 1 to {MaxBits} bits (the quantizer rounds the 16-bit working weights, so a wider grid would leave them as they are)");
        return null;
    }

    /// <summary>Where the quantization type and rounding are set, for the advice of the 1- and 2-bit checks.</summary>
    internal sealed record LowBitsAdvice(string TypePath, string RoundingPath);

    /// <summary>
    /// The bits anneal down from start_bits to target_bits, so target_bits may not exceed start_bits; and 2 bits
    /// (ternary) and 1 bit (binary) are symmetric with nearest rounding only, as DeepSpeed asserts for its ternary and
    /// binary quantizers. Errors point at target_bits, in <paramref name="bits"/>.
    /// </summary>
    internal static void CheckBits(JsonSection bits, int? start, int? target, QuantizationType type, QuantizationRounding rounding, LowBitsAdvice advice)
    {
        if (target is not { } t) return;
        if (start is { } s && t > s)
            bits.Error("target_bits", $"{t} is above start_bits ({s}): the bits anneal down from start_bits to target_bits");
        if (t > 2) return;
        string kind = t == 2 ? "ternary" : "binary";
        if (type == QuantizationType.Asymmetric)
            bits.Error("target_bits", $"{t} bit(s) is {kind} quantization, which is symmetric only (DeepSpeed asserts this too): set {advice.TypePath} to \"symmetric\"");
        if (rounding == QuantizationRounding.Stochastic)
            bits.Error("target_bits", $"{t} bit(s) is {kind} quantization, which rounds to nearest only (DeepSpeed asserts this too): set {advice.RoundingPath} to \"nearest\"");
    }

    /// <summary>
    /// The fp16_mixed_quantize section of <paramref name="parent"/> (compression's shared_parameters and MoQ's section
    /// spell it alike): whether the working weight mixes fp16 and quantized values, and the ratio it loses per update.
    /// </summary>
    internal static (bool Enabled, double ChangeRatio) ReadFp16Mixing(JsonSection parent)
    {
        var mixing = parent.Section("fp16_mixed_quantize");
        bool enabled = mixing.Bool("enabled") ?? false;
        double ratio = mixing.Number("quantize_change_ratio", AutoRule.NotAllowed) ?? DefaultChangeRatio;
        if (!(ratio > 0 && ratio <= 1))
        {
            mixing.Error("quantize_change_ratio", $"{JsonSection.Format(ratio)} is out of range: the share of the fp16 weight the mix loses per quantizing update, above 0 and at most 1");
            ratio = DefaultChangeRatio;
        }

        UnsupportedFeaturePolicy.ReportLeftovers(mixing);
        return (enabled, ratio);
    }
}
