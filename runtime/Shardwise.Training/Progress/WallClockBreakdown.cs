namespace Shardwise.Training.Progress;

/// <summary>
/// Milliseconds spent in each phase of one step, like DeepSpeed's <c>wall_clock_breakdown</c>. Only measured when
/// that option is on, because timing each phase costs synchronisation points.
/// </summary>
public sealed record WallClockBreakdown(double ForwardMs, double BackwardMs, double StepMs);
