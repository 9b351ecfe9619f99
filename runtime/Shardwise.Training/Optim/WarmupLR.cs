using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's WarmupLR: lr = min + (max − min)·γ, with γ the warmup fraction before N steps and 1 after.
/// </summary>
public sealed class WarmupLR : ILearningRateSchedule
{
    public WarmupLR(double warmupMinLr, double warmupMaxLr, long warmupNumSteps, WarmupType warmupType)
    {
        WarmupMinLr = warmupMinLr;
        WarmupMaxLr = warmupMaxLr;
        WarmupNumSteps = WarmupGamma.EffectiveWarmupSteps(warmupNumSteps);
        WarmupType = warmupType;
    }

    public double WarmupMinLr { get; }

    public double WarmupMaxLr { get; }

    /// <summary>After DeepSpeed's clamp to at least 2.</summary>
    public long WarmupNumSteps { get; }

    public WarmupType WarmupType { get; }

    public double LearningRate(long step)
    {
        WarmupGamma.RequireNonNegative(step);
        return WarmupMinLr + ((WarmupMaxLr - WarmupMinLr) * Gamma(step));
    }

    /// <summary>WarmupDecayLR replaces the post-warmup part.</summary>
    internal double Gamma(long step, long? totalNumSteps = null)
    {
        if (step < WarmupNumSteps)
        {
            return WarmupGamma.At(step, WarmupNumSteps, WarmupType);
        }

        return totalNumSteps is { } total
            ? System.Math.Max(0.0, (double)(total - step) / System.Math.Max(1.0, total - WarmupNumSteps))
            : 1.0;
    }
}
