using System;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>Builds the schedule a config asks for.</summary>
public static class LearningRateScheduleFactory
{
    /// <param name="scheduler">The config's scheduler section; null means a constant rate.</param>
    /// <param name="optimizerLearningRate">
    /// The optimizer's lr: the constant rate, and WarmupCosineLR's base. WarmupLR/WarmupDecayLR, OneCycle and
    /// LRRangeTest ignore it: as in DeepSpeed, their own rates replace it.
    /// </param>
    public static ILearningRateSchedule Create(SchedulerConfig? scheduler, double optimizerLearningRate)
    {
        if (scheduler is null)
        {
            return new ConstantLearningRate(optimizerLearningRate);
        }

        return scheduler.Type switch
        {
            SchedulerType.WarmupLR => new WarmupLR(scheduler.WarmupMinLr, scheduler.WarmupMaxLr, scheduler.WarmupNumSteps, scheduler.WarmupType),
            SchedulerType.WarmupDecayLR => new WarmupDecayLR(scheduler.WarmupMinLr, scheduler.WarmupMaxLr, scheduler.WarmupNumSteps, RequireTotal(scheduler), scheduler.WarmupType),
            SchedulerType.WarmupCosineLR => new WarmupCosineLR(optimizerLearningRate, RequireTotal(scheduler), scheduler.WarmupMinRatio, scheduler.WarmupNumSteps, scheduler.CosMinRatio, scheduler.WarmupType),
            SchedulerType.OneCycle => new OneCycle(scheduler.OneCycle ?? throw new ArgumentException("OneCycle needs its parameters", nameof(scheduler))),
            SchedulerType.LRRangeTest => new LRRangeTest(scheduler.LrRangeTest ?? throw new ArgumentException("LRRangeTest needs its parameters", nameof(scheduler))),
            _ => throw new ArgumentOutOfRangeException(nameof(scheduler), scheduler.Type, "unknown scheduler type"),
        };
    }

    /// <summary>The schedule for a whole config (optimizer lr defaults to DeepSpeed's 1e-3 when absent).</summary>
    public static ILearningRateSchedule Create(DeepSpeedConfig config) =>
        Create(config.Scheduler, config.Optimizer?.LearningRate ?? ConfigDefaults.LearningRate);

    private static long RequireTotal(SchedulerConfig scheduler) =>
        scheduler.TotalNumSteps ?? throw new ArgumentException($"{scheduler.Type} needs total_num_steps", nameof(scheduler));
}
