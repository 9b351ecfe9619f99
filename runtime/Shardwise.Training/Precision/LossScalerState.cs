namespace Shardwise.Training.Precision;

/// <summary>What a checkpoint must hold to resume a <see cref="DynamicLossScaler"/> exactly.</summary>
public sealed record LossScalerState(
    double Scale,
    long CurrentIteration,
    long LastOverflowIteration,
    int CurrentHysteresis,
    long SkippedSteps);
