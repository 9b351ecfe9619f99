using System;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// The warmup fraction shared by DeepSpeed's three warmup schedules, for step &lt; N:
///   log:    ln(step + 1) / ln(N)
///   linear: step / N
/// where N = max(2, warmup_num_steps) — DeepSpeed clamps N so that ln(N) is never 0.
/// </summary>
internal static class WarmupGamma
{
    public static long EffectiveWarmupSteps(long warmupNumSteps) => Math.Max(2, warmupNumSteps);

    public static double At(long step, long effectiveWarmupSteps, WarmupType type) => type switch
    {
        WarmupType.Linear => (double)step / effectiveWarmupSteps,
        _ => Math.Log(step + 1) / Math.Log(effectiveWarmupSteps),
    };

    public static void RequireNonNegative(long step)
    {
        // DeepSpeed returns 0 (with a warning) before the schedule starts; asking for that is a caller bug.
        ArgumentOutOfRangeException.ThrowIfNegative(step);
    }
}
