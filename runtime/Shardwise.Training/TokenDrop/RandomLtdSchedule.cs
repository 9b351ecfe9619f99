using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using Shardwise.Training.Config;

namespace Shardwise.Training.TokenDrop;

/// <summary>
/// Random-LTD's kept length (DeepSpeed's RandomLTDScheduler, "fixed_linear", which is its fixed_root with degree 1):
/// how many tokens of each sample a dropping layer runs on. DeepSpeed starts the scheduler at min_value and, after each
/// optimizer step, sets it to f(global_steps) with the step count just reached, where
/// f(t) = min(⌊(t / require_steps)·(max − min) + min⌋ rounded down to a multiple of seq_per_step, max), and stops
/// updating once it reaches max. So the step after t completed steps keeps <see cref="ReservedLength"/>(t): min_value as
/// written (not rounded) for t = 0, f(t) after. A pure function of the step, so a resumed run needs no saved state.
/// Steps count as DeepSpeed's global_steps do, skipped (overflowed) fp16 steps included.
/// </summary>
public sealed class RandomLtdSchedule
{
    public RandomLtdSchedule(RandomLtdConfig config)
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
    }

    public RandomLtdConfig Config { get; }

    /// <summary>The tokens per sample a dropping layer keeps in the step after <paramref name="completedSteps"/> optimizer steps.</summary>
    public int ReservedLength(long completedSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(completedSteps);
        // DeepSpeed updates only while the current value is below max: with min = max it never leaves min_value.
        if (completedSteps == 0 || Config.MinValue >= Config.MaxValue) return Config.MinValue;
        return LinearValue(completedSteps);
    }

    /// <summary>
    /// The fewest completed steps from which on every step keeps all <paramref name="sequenceLength"/> tokens (a layer
    /// then runs unchanged); null when max_value is shorter. The schedule never shrinks after the first step, but it may
    /// at the first: min_value is used as written there and rounded down to a multiple of seq_per_step after.
    /// </summary>
    public long? FullFromStep(int sequenceLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequenceLength);
        if (Config.MinValue >= Config.MaxValue) return Config.MinValue >= sequenceLength ? 0 : null;
        if (Config.MaxValue < sequenceLength) return null;

        // f is non-decreasing in t (each floating-point operation in it is monotone), so bisect over t ≥ 1.
        long low = 1, high = 1;
        while (LinearValue(high) < sequenceLength) high *= 2;
        while (low < high)
        {
            long middle = low + (high - low) / 2;
            if (LinearValue(middle) >= sequenceLength) high = middle;
            else low = middle + 1;
        }

        return low == 1 && Config.MinValue >= sequenceLength ? 0 : low;
    }

    /// <summary>The start-up line for <c>plan</c> and <c>train</c>, for a model trained on <paramref name="sequenceLength"/> tokens.</summary>
    public string Describe(int sequenceLength)
    {
        var text = new StringBuilder("random-LTD: layers ")
            .Append(Ranges(Config.LayerIds)).Append(" of ").Append(N(Config.TotalLayerNum))
            .Append(" keep ").Append(N(Config.MinValue)).Append('→').Append(N(Config.MaxValue)).Append(" tokens (fixed_linear");
        if (Config.MaxValue > Config.MinValue)
        {
            double stepsPerIncrease = (double)Config.RequireSteps * Config.SeqPerStep / (Config.MaxValue - Config.MinValue);
            text.Append(", +").Append(N(Config.SeqPerStep)).Append(" about every ")
                .Append(stepsPerIncrease.ToString("0.##", CultureInfo.InvariantCulture)).Append(" steps");
        }

        text.Append(')');
        text.Append(FullFromStep(sequenceLength) switch
        {
            0 => $"; all {N(sequenceLength)} tokens from the first step: nothing is dropped",
            { } step => $"; all {N(sequenceLength)} tokens once {N(step)} steps are done",
            null => $"; never all {N(sequenceLength)} tokens (max_value {N(Config.MaxValue)})",
        });
        return text.Append("; evaluation runs every token").ToString();
    }

    /// <summary>DeepSpeed's __fixed_root_get_value with degree 1, in its order of floating-point operations.</summary>
    private int LinearValue(long globalSteps)
    {
        double share = (double)globalSteps / Config.RequireSteps;
        double next = Math.Floor(share * (Config.MaxValue - Config.MinValue) + Config.MinValue);
        // Past max + seq_per_step the rounded value is above max whatever the rounding: capped, and no long overflow.
        if (next >= (double)Config.MaxValue + Config.SeqPerStep) return Config.MaxValue;
        long value = (long)next;
        value -= value % Config.SeqPerStep;
        return (int)Math.Min(value, Config.MaxValue);
    }

    /// <summary>"1-22" for a run of consecutive layers, "1, 3, 5-7" otherwise; in the config's order.</summary>
    private static string Ranges(IReadOnlyList<int> layers)
    {
        var parts = new List<string>();
        for (int i = 0; i < layers.Count;)
        {
            int end = i;
            while (end + 1 < layers.Count && layers[end + 1] == layers[end] + 1) end++;
            parts.Add(end > i + 1 ? $"{N(layers[i])}-{N(layers[end])}" : N(layers[i]));
            if (end == i + 1) parts.Add(N(layers[end]));
            i = end + 1;
        }

        return string.Join(", ", parts);
    }

    private static string N(long value) => value.ToString(CultureInfo.InvariantCulture);
}
