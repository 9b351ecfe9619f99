namespace Shardwise.Training.Config;

/// <summary>
/// DeepSpeed's OneCycle parameters (lr_schedules.py): the learning rate climbs from cycle_min_lr to cycle_max_lr over
/// cycle_first_step_size steps and falls back over cycle_second_step_size, then decays as
/// cycle_min_lr / (1 + decay_lr_rate·k/decay_step_size); with cycle_momentum Adam's β1 moves the other way between
/// cycle_max_mom and cycle_min_mom, and β2 becomes 0.99 (DeepSpeed sets the betas to (momentum, 0.99)).
/// </summary>
public sealed record OneCycleConfig
{
    /// <summary>The β2 DeepSpeed's OneCycle writes beside the cycled β1.</summary>
    public const double CycledBeta2 = 0.99;

    public required double CycleMinLr { get; init; }

    public required double CycleMaxLr { get; init; }

    public double DecayLrRate { get; init; }

    public long CycleFirstStepSize { get; init; } = 2000;

    /// <summary>As DeepSpeed: cycle_first_step_size when absent.</summary>
    public required long CycleSecondStepSize { get; init; }

    /// <summary>0: no decay after the cycle (neither of the rate nor of the momentum).</summary>
    public long DecayStepSize { get; init; }

    public bool CycleMomentum { get; init; } = true;

    public double CycleMinMom { get; init; } = 0.8;

    public double CycleMaxMom { get; init; } = 0.9;

    public double DecayMomRate { get; init; }

    internal static OneCycleConfig Read(JsonSection parameters)
    {
        bool minGiven = parameters.Has("cycle_min_lr"), maxGiven = parameters.Has("cycle_max_lr");
        var minLr = parameters.Number("cycle_min_lr", AutoRule.NotAllowed);
        var maxLr = parameters.Number("cycle_max_lr", AutoRule.NotAllowed);
        foreach (var (key, value, given) in new[] { ("cycle_min_lr", minLr, minGiven), ("cycle_max_lr", maxLr, maxGiven) })
        {
            if (!given)
            {
                parameters.Diagnostics.ErrorSentence(parameters.PathOf(key), "is required for OneCycle (DeepSpeed has no default for it)");
            }
            else if (value is < 0 || (value is { } v && double.IsNaN(v)))
            {
                parameters.Error(key, $"{JsonSection.Format(value!.Value)} is out of range: must be >= 0");
            }
        }

        var first = parameters.Integer("cycle_first_step_size", AutoRule.NotAllowed, min: 1) ?? 2000;
        var second = parameters.Integer("cycle_second_step_size", AutoRule.NotAllowed, min: 0) ?? first;
        // DeepSpeed's OneCycle documents stairs but computes its schedule without them: read, with a warning.
        foreach (var key in new[] { "cycle_first_stair_count", "cycle_second_stair_count" })
        {
            if (parameters.Integer(key, AutoRule.NotAllowed, min: 0) is > 0)
            {
                parameters.Warning(key, "has no effect: DeepSpeed's OneCycle does not use it either (the schedule is continuous)");
            }
        }

        var config = new OneCycleConfig
        {
            CycleMinLr = minLr ?? 0,
            CycleMaxLr = maxLr ?? 0,
            DecayLrRate = parameters.Number("decay_lr_rate", AutoRule.NotAllowed) ?? 0,
            CycleFirstStepSize = first,
            CycleSecondStepSize = second,
            DecayStepSize = parameters.Integer("decay_step_size", AutoRule.NotAllowed, min: 0) ?? 0,
            CycleMomentum = parameters.Bool("cycle_momentum") ?? true,
            CycleMinMom = parameters.Number("cycle_min_mom", AutoRule.NotAllowed) ?? 0.8,
            CycleMaxMom = parameters.Number("cycle_max_mom", AutoRule.NotAllowed) ?? 0.9,
            DecayMomRate = parameters.Number("decay_mom_rate", AutoRule.NotAllowed) ?? 0,
        };
        foreach (var (key, value) in new[] { ("cycle_min_mom", config.CycleMinMom), ("cycle_max_mom", config.CycleMaxMom) })
        {
            if (value is < 0 or >= 1 || double.IsNaN(value))
            {
                parameters.Error(key, $"{JsonSection.Format(value)} is out of range: a momentum (Adam's β1) must be in [0, 1)");
            }
        }

        return config;
    }
}

/// <summary>
/// DeepSpeed's LRRangeTest parameters: lr = lr_range_test_min_lr · (1 + lr_range_test_step_rate · k/step_size), k
/// the schedule step (floored to whole step_size intervals with lr_range_test_staircase).
/// </summary>
public sealed record LrRangeTestConfig
{
    public double MinLr { get; init; } = 1e-3;

    public long StepSize { get; init; } = 2000;

    public double StepRate { get; init; } = 1.0;

    public bool Staircase { get; init; }

    internal static LrRangeTestConfig Read(JsonSection parameters)
    {
        var config = new LrRangeTestConfig
        {
            MinLr = parameters.Number("lr_range_test_min_lr", AutoRule.NotAllowed) ?? 1e-3,
            StepSize = parameters.Integer("lr_range_test_step_size", AutoRule.NotAllowed, min: 1) ?? 2000,
            StepRate = parameters.Number("lr_range_test_step_rate", AutoRule.NotAllowed) ?? 1.0,
            Staircase = parameters.Bool("lr_range_test_staircase") ?? false,
        };
        if (config.MinLr < 0 || double.IsNaN(config.MinLr))
        {
            parameters.Error("lr_range_test_min_lr", $"{JsonSection.Format(config.MinLr)} is out of range: must be >= 0");
        }

        return config;
    }
}
