using System.Collections.Generic;

namespace Shardwise.Training.Config;

/// <summary>How a weight group's range maps onto its integer grid (DeepSpeed's quantization_type).</summary>
public enum QuantizationType
{
    /// <summary>scale = 2·max|w| / 2^bits, levels −2^(bits−1) … 2^(bits−1)−1, zero at zero.</summary>
    Symmetric,
    /// <summary>scale = (max − min) / 2^bits, levels 0 … 2^bits−1 from a rounded zero point.</summary>
    Asymmetric,
}

/// <summary>How a weight rounds to its level (DeepSpeed's rounding).</summary>
public enum QuantizationRounding
{
    Nearest,
    /// <summary>Uniform noise in [−½, ½) added before rounding.</summary>
    Stochastic,
}

/// <summary>
/// One entry of a technique's different_groups: which modules it covers, by DeepSpeed's rule (each pattern is a
/// regular expression searched in the module names; "*" alone means every compressible module).
/// </summary>
/// <param name="Name">The group's key, as written.</param>
/// <param name="JsonPath">The group's JSON path, for messages about it.</param>
/// <param name="Modules">The "modules" patterns (default ["*"]).</param>
/// <param name="RelatedModules">"related_modules", one list per pattern; only read back for messages (Shardwise masks, it does not shrink layers).</param>
public sealed record CompressionModuleGroup(string Name, string JsonPath, IReadOnlyList<string> Modules, IReadOnlyList<IReadOnlyList<string>>? RelatedModules);

/// <summary>A weight_quantization group: bits anneal from StartBits to TargetBits, one bit per doubling period.</summary>
public sealed record WeightQuantizationGroup(CompressionModuleGroup Modules, int StartBits, int TargetBits, int QuantizationPeriod);

/// <summary>
/// compression_training.weight_quantization (DeepSpeed's MoQ-style quantization-aware training): the 16-bit working
/// weights of the matched modules are quantized after every applied update (straight-through: the fp32 masters and
/// the gradients are untouched), or, with quantize_weight_in_forward, at the target bits for every forward.
/// </summary>
public sealed partial record WeightQuantizationConfig
{
    public const string SectionPath = "$.compression_training.weight_quantization";

    public bool Enabled { get; init; }

    /// <summary>
    /// The JSON path the settings were read from: <see cref="SectionPath"/>, or "$.quantize_training" for the legacy MoQ
    /// section, so that messages about them point at the section the user wrote.
    /// </summary>
    public string Source { get; init; } = SectionPath;

    /// <summary>Applied updates before quantization starts (shared_parameters.schedule_offset, default 0).</summary>
    public long ScheduleOffset { get; init; }

    /// <summary>Groups each weight tensor is split into, each with its own scale (quantize_groups, default 1).</summary>
    public int QuantizeGroups { get; init; } = 1;

    public QuantizationType Type { get; init; } = QuantizationType.Symmetric;

    public QuantizationRounding Rounding { get; init; } = QuantizationRounding.Nearest;

    /// <summary>quantize_weight_in_forward: the target bits from the offset on, no annealing and no fp16 mixing.</summary>
    public bool InForward { get; init; }

    /// <summary>fp16_mixed_quantize.enabled: the working weight is ratio·w + (1 − ratio)·Q(w), ratio falling from 1.</summary>
    public bool MixedFp16 { get; init; }

    /// <summary>fp16_mixed_quantize.quantize_change_ratio (default 0.001): what the ratio loses per quantizing update.</summary>
    public double ChangeRatio { get; init; } = 0.001;

    /// <summary>quantize_verbose: the trainer prints each bit switch.</summary>
    public bool Verbose { get; init; }

    public IReadOnlyList<WeightQuantizationGroup> Groups { get; init; } = [];
}

/// <summary>A sparse_pruning or row_pruning group: the fraction of weights (or rows) it keeps.</summary>
public sealed record PruningGroup(CompressionModuleGroup Modules, double DenseRatio);

/// <summary>
/// compression_training.sparse_pruning, row_pruning or head_pruning. With method "l1", once ScheduleOffset updates are
/// applied, the matched weights (sparse) or output rows with their bias (row) of smallest magnitude are masked to zero
/// in the working copy, and their gradients are masked too, for the rest of training. With "topk" each weight, row or
/// attention head (the input columns of the attention's output projection that one head's values feed) has a score,
/// trained with the model from the offset on, and every forward keeps the top dense_ratio of them.
/// </summary>
public sealed partial record PruningConfig
{
    public bool Enabled { get; init; }

    /// <summary>shared_parameters.method: <see cref="L1"/> or <see cref="TopK"/>.</summary>
    public string Method { get; init; } = L1;

    /// <summary>Whether the masks are learned (<see cref="TopK"/>) rather than taken from magnitudes once.</summary>
    public bool Learned => Method == TopK;

    /// <summary>head_pruning's num_heads: the attention heads of each matched output projection; null for the others.</summary>
    public int? NumHeads { get; init; }

    /// <summary>Applied updates before the mask is taken and applied (default 1000, as DeepSpeed's).</summary>
    public long ScheduleOffset { get; init; } = 1000;

    public IReadOnlyList<PruningGroup> Groups { get; init; } = [];

    /// <summary>The technique's JSON path.</summary>
    public required string SectionPath { get; init; }
}

/// <summary>
/// The "compression_training" section (DeepSpeed Compression). Built: weight quantization (both modes), activation
/// quantization (dynamic ranges), sparse and row pruning (l1 and topk), head pruning (topk), and layer reduction (a
/// student initialised from a teacher's layers). Refused with the key's path: channel pruning, static activation ranges
/// and snip_momentum masks (docs/architecture.md, "Compression training").
/// </summary>
public sealed partial record CompressionTrainingConfig
{
    public const string SectionPath = "$.compression_training";

    public WeightQuantizationConfig WeightQuantization { get; init; } = new();

    public PruningConfig SparsePruning { get; init; } = new() { SectionPath = SectionPath + ".sparse_pruning" };

    public PruningConfig RowPruning { get; init; } = new() { SectionPath = SectionPath + ".row_pruning" };

    /// <summary>Acts in every forward through the backend (<see cref="Ops.IActivationQuantizer"/>), not on the weights.</summary>
    public ActivationQuantizationConfig ActivationQuantization { get; init; } = new();

    public PruningConfig HeadPruning { get; init; } = new() { SectionPath = SectionPath + ".head_pruning", Method = PruningConfig.TopK };

    /// <summary>Where the weights start from (it acts once, when --init-from loads the teacher, not on the training step).</summary>
    public LayerReductionConfig LayerReduction { get; init; } = new();

    /// <summary>Whether a technique that rewrites the working weights while training is on (layer reduction is not one).</summary>
    public bool Enabled => WeightQuantization.Enabled || SparsePruning.Enabled || RowPruning.Enabled || HeadPruning.Enabled;

    /// <summary>Whether some technique trains mask scores (topk), which the engine then steps beside the weights.</summary>
    public bool LearnsMasks => SparsePruning is { Enabled: true, Learned: true } || RowPruning is { Enabled: true, Learned: true } || HeadPruning.Enabled;
}
