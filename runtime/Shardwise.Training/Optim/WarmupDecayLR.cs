using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's WarmupDecayLR: WarmupLR's warmup, then a linear decay to 0 at total_num_steps T:
/// γ = max(0, (T − step) / max(1, T − N)). The rate stays 0 after T.
/// </summary>
public sealed class WarmupDecayLR : ILearningRateSchedule
{
    private readonly WarmupLR warmup;

    public WarmupDecayLR(double warmupMinLr, double warmupMaxLr, long warmupNumSteps, long totalNumSteps, WarmupType warmupType)
    {
        warmup = new WarmupLR(warmupMinLr, warmupMaxLr, warmupNumSteps, warmupType);
        TotalNumSteps = totalNumSteps;
    }

    public long TotalNumSteps { get; }

    public long WarmupNumSteps => warmup.WarmupNumSteps;

    public double LearningRate(long step)
    {
        WarmupGamma.RequireNonNegative(step);
        return warmup.WarmupMinLr + ((warmup.WarmupMaxLr - warmup.WarmupMinLr) * warmup.Gamma(step, TotalNumSteps));
    }
}
