namespace Shardwise.Training.Config;

/// <summary>
/// Values the caller (the trainer's command line) knows and a Hugging Face style config leaves as "auto".
/// An override only fills an "auto"; an explicit number in the file always wins, so the file stays the
/// single source of truth for everything it spells out.
/// </summary>
public sealed record ConfigOverrides
{
    public int? MicroBatchPerGpu { get; init; }
    public int? GradientAccumulationSteps { get; init; }
    public double? LearningRate { get; init; }
    public long? TotalSteps { get; init; }
    public long? WarmupSteps { get; init; }
    public double? WeightDecay { get; init; }
    public (double Beta1, double Beta2)? Betas { get; init; }
    public double? Eps { get; init; }
    public double? GradientClipping { get; init; }
    public bool? Fp16 { get; init; }
    public bool? Bf16 { get; init; }

    /// <summary>Model hidden size: sizes "auto" ZeRO buckets the way Hugging Face does (h², 0.9·h², 10·h).</summary>
    public int? HiddenSize { get; init; }

    public static ConfigOverrides None { get; } = new();
}
