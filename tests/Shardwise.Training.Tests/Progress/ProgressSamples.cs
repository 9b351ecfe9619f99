using Shardwise.Training.Progress;

namespace Shardwise.Training.Tests.Progress;

/// <summary>Shared metrics for the progress tests, chosen so every formatted field has a known expected text.</summary>
internal static class ProgressSamples
{
    // 3.2, 6.4 and 12.1 MiB and 9 KiB, so the expected text reads like the spec example.
    public static readonly MemoryBreakdown Memory = new(
        ParametersBytes: 3_355_443,
        GradientsBytes: 3_355_443,
        MasterBytes: 0,
        OptimizerBytes: 6_710_886,
        ActivationBytes: 12_687_770,
        BufferBytes: 9_216);

    public static StepMetrics Step120 => new(
        Step: 120,
        TotalSteps: 2000,
        Loss: 2.43124,
        LearningRate: 9.87e-4,
        LossScale: 65536,
        SkippedSteps: 0,
        TokensPerSecond: 4210.4,
        MillisecondsPerStep: 182.3,
        GradientNorm: 0.84213,
        Memory: Memory,
        ValidationLoss: 2.51);
}
