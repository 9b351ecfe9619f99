using System;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's WarmupCosineLR (lr_schedules.py, get_lr_ratio), as a ratio r of the optimizer's lr:
///   step &lt; N:  r = warmup_min_ratio + (1 − warmup_min_ratio)·γ      (γ: log or linear warmup fraction)
///   step ≥ N:  r = max(0, cos_min_ratio + (1 − cos_min_ratio)·(1 + cos(π·(step − N + 1)/(T − N)))/2)
/// so the rate climbs from warmup_min_ratio·lr to lr, then follows a half cosine down to exactly
/// cos_min_ratio·lr at step T − 1. N = max(2, warmup_num_steps). Note the "+1": the first post-warmup
/// step (step N) is already one cosine step in, so the peak lr itself is never returned after warmup.
/// One deliberate difference: from step T on, upstream's cosine climbs back up (its argument passes π);
/// we hold the minimum reached at T − 1, since nobody wants the rate to rise after the planned end.
/// </summary>
public sealed class WarmupCosineLR : ILearningRateSchedule
{
    public WarmupCosineLR(double baseLearningRate, long totalNumSteps, double warmupMinRatio, long warmupNumSteps, double cosMinRatio, WarmupType warmupType)
    {
        BaseLearningRate = baseLearningRate;
        TotalNumSteps = totalNumSteps;
        WarmupMinRatio = warmupMinRatio;
        WarmupNumSteps = WarmupGamma.EffectiveWarmupSteps(warmupNumSteps);
        CosMinRatio = cosMinRatio;
        WarmupType = warmupType;
        if (TotalNumSteps <= WarmupNumSteps)
        {
            throw new ArgumentOutOfRangeException(nameof(totalNumSteps), $"total_num_steps ({totalNumSteps}) must exceed warmup_num_steps ({WarmupNumSteps})");
        }
    }

    /// <summary>The optimizer's configured lr (DeepSpeed: the param group's lr at construction).</summary>
    public double BaseLearningRate { get; }

    public long TotalNumSteps { get; }

    public double WarmupMinRatio { get; }

    public long WarmupNumSteps { get; }

    public double CosMinRatio { get; }

    public WarmupType WarmupType { get; }

    public double LearningRate(long step) => BaseLearningRate * Ratio(step);

    public double Ratio(long step)
    {
        WarmupGamma.RequireNonNegative(step);
        if (step < WarmupNumSteps)
        {
            return WarmupMinRatio + ((1.0 - WarmupMinRatio) * WarmupGamma.At(step, WarmupNumSteps, WarmupType));
        }

        var clamped = Math.Min(step, TotalNumSteps - 1);
        double realLastStep = clamped - WarmupNumSteps + 1;
        double realTotalSteps = TotalNumSteps - WarmupNumSteps;
        var cosine = (1.0 + Math.Cos(Math.PI * realLastStep / realTotalSteps)) / 2.0;
        return Math.Max(0.0, CosMinRatio + ((1.0 - CosMinRatio) * cosine));
    }
}
