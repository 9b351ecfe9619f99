namespace Shardwise.Training.Progress;

/// <summary>
/// Everything reported about one optimizer step. Optional values are null when they were not measured at this step
/// (validation runs only every few steps, accuracy only for classifiers, the wall-clock breakdown only when enabled),
/// so reports and CSV rows can leave them out instead of printing a misleading zero.
/// </summary>
/// <param name="Step">Steps completed so far (1-based: the first step reports 1).</param>
/// <param name="LossScale">The dynamic loss scale in use; 1 when training without loss scaling.</param>
/// <param name="SkippedSteps">Steps skipped so far because gradients overflowed.</param>
/// <param name="Accuracy">A fraction in [0, 1]; printed as a percentage.</param>
public sealed record StepMetrics(
    long Step,
    long TotalSteps,
    double Loss,
    double LearningRate,
    double LossScale,
    long SkippedSteps,
    double TokensPerSecond,
    double MillisecondsPerStep,
    double GradientNorm,
    MemoryBreakdown Memory,
    double? ValidationLoss = null,
    double? Accuracy = null,
    WallClockBreakdown? WallClock = null);
