using System;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's LRRangeTest: lr = min · (1 + rate · s/step_size), s the schedule step, with s/step_size floored to
/// whole intervals when staircase is set. Step 0 gives min, DeepSpeed's initial value.
/// </summary>
public sealed class LRRangeTest(LrRangeTestConfig config) : ILearningRateSchedule
{
    private readonly LrRangeTestConfig config = config ?? throw new ArgumentNullException(nameof(config));

    public double LearningRate(long step)
    {
        WarmupGamma.RequireNonNegative(step);
        double interval = (double)step / config.StepSize;
        if (config.Staircase) interval = Math.Floor(interval);
        return config.MinLr * (1 + (config.StepRate * interval));
    }
}
