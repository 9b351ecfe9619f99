using System;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// DeepSpeed's OneCycle as a function of the step s (the optimizer steps taken before this one). In the cycle, with
/// x = frac(s / (first + second)) and r = first / (first + second), the scale is x / r going up and (x − 1)/(r − 1)
/// coming down; lr = min + (max − min)·scale and, with cycle_momentum, β1 = max_mom − (max_mom − min_mom)·scale. After
/// the cycle (s > first + second) lr = min / (1 + decay_lr_rate·(s − total)/decay_step_size) and β1 = max_mom·(1 +
/// decay_mom_rate·(s − total)/decay_step_size), each only where its rate and decay_step_size are non-zero (else min
/// and max_mom). Step 0 runs with the values DeepSpeed's constructor sets: min lr and β1 = cycle_min_mom. β2 is 0.99
/// throughout with cycle_momentum, as DeepSpeed writes (momentum, 0.99) into the optimizer's betas.
/// </summary>
public sealed class OneCycle : ILearningRateSchedule
{
    private readonly OneCycleConfig config;
    private readonly double total, stepRatio;

    public OneCycle(OneCycleConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        this.config = config;
        total = config.CycleFirstStepSize + (double)config.CycleSecondStepSize;
        stepRatio = config.CycleFirstStepSize / total;
    }

    public double LearningRate(long step)
    {
        WarmupGamma.RequireNonNegative(step);
        if (step <= total) return config.CycleMinLr + ((config.CycleMaxLr - config.CycleMinLr) * Scale(step));
        if (config.DecayStepSize == 0 || config.DecayLrRate == 0) return config.CycleMinLr;
        return config.CycleMinLr / (1 + (config.DecayLrRate * DecayInterval(step)));
    }

    public (double Beta1, double Beta2)? Betas(long step)
    {
        WarmupGamma.RequireNonNegative(step);
        if (!config.CycleMomentum) return null;
        if (step == 0) return (config.CycleMinMom, OneCycleConfig.CycledBeta2);
        if (step <= total) return (config.CycleMaxMom - ((config.CycleMaxMom - config.CycleMinMom) * Scale(step)), OneCycleConfig.CycledBeta2);
        if (config.DecayStepSize == 0 || config.DecayMomRate == 0) return (config.CycleMaxMom, OneCycleConfig.CycledBeta2);
        return (config.CycleMaxMom * (1 + (config.DecayMomRate * DecayInterval(step))), OneCycleConfig.CycledBeta2);
    }

    /// <summary>Where in the cycle step <paramref name="step"/> falls: 0 at the ends, 1 at the top.</summary>
    private double Scale(long step)
    {
        double position = step / total;
        double x = position - Math.Floor(position);
        return x <= stepRatio ? x / stepRatio : (x - 1) / (stepRatio - 1);
    }

    private double DecayInterval(long step) => (step - total) / config.DecayStepSize;
}
