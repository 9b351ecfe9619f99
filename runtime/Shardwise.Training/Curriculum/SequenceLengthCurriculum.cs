using System;
using System.Globalization;
using Shardwise.Cpu;
using Shardwise.Training.Config;

namespace Shardwise.Training.Curriculum;

/// <summary>
/// DeepSpeed's legacy sequence-length curriculum: before each step's forward the engine calls
/// <c>update_difficulty(global_steps + 1)</c> and Megatron truncates every sequence to that many tokens. Shardwise keeps
/// the planned shapes and instead sets every target at or past that length to the ignore index, which leaves those
/// positions out of the loss and its mean (<see cref="CrossEntropyKernels.IgnoreIndex"/>). Under causal attention a
/// position never sees the tokens after it, so the loss and the gradients are those of the truncated sequences; what
/// it does not give is truncation's shorter forward and backward.
/// </summary>
public sealed class SequenceLengthCurriculum
{
    private readonly CurriculumLearningConfig config;

    // DeepSpeed's scheduler is stateful (the difficulty stops changing once it reaches max_difficulty), so the
    // difficulty is replayed from step 1; this remembers the last replayed step so that a run costs one pass in all.
    private long replayedStep;
    private int current;

    public SequenceLengthCurriculum(CurriculumLearningConfig config)
    {
        this.config = config ?? throw new ArgumentNullException(nameof(config));
        current = config.MinDifficulty;
    }

    public CurriculumLearningConfig Config => config;

    /// <summary>
    /// The sequence length the step after <paramref name="completedSteps"/> optimizer steps trains on (DeepSpeed's
    /// current difficulty after <c>update_difficulty(completedSteps + 1)</c>).
    /// </summary>
    public int LengthAt(long completedSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(completedSteps);
        long target = completedSteps + 1;
        if (target < replayedStep)
        {
            replayedStep = 0;
            current = config.MinDifficulty;
        }

        for (long step = replayedStep + 1; step <= target; step++)
        {
            if (current < config.MaxDifficulty) current = Difficulty(step);
        }

        replayedStep = target;
        return current;
    }

    /// <summary>The schedule's difficulty at <paramref name="step"/> (curriculum_scheduler.py's get_difficulty).</summary>
    public int Difficulty(long step) => config.ScheduleType switch
    {
        CurriculumScheduleType.FixedDiscrete => Discrete(step),
        CurriculumScheduleType.FixedLinear => Root(step, 1),
        _ => Root(step, config.RootDegree),
    };

    private int Discrete(long step)
    {
        var maxSteps = config.MaxSteps;
        if (maxSteps.Count == 0 || step > maxSteps[^1]) return config.Difficulties[^1];
        for (int i = 0; i < maxSteps.Count; i++)
        {
            if (step <= maxSteps[i]) return config.Difficulties[i];
        }

        return config.Difficulties[^1];
    }

    private int Root(long step, double degree)
    {
        double share = Math.Pow((double)step / config.TotalCurriculumStep, 1.0 / degree);
        long next = (long)Math.Floor(share * (config.MaxDifficulty - config.MinDifficulty) + config.MinDifficulty);
        next -= next % config.DifficultyStep;
        return (int)Math.Min(next, config.MaxDifficulty);
    }

    /// <summary>
    /// Sets every target at position <paramref name="length"/> or later of each row of <paramref name="sequence"/>
    /// tokens to the ignore index. A length at or beyond the sequence masks nothing.
    /// </summary>
    public static void MaskTargets(Span<int> targets, int sequence, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequence);
        if (targets.Length % sequence != 0)
            throw new ArgumentException($"{targets.Length} targets are not whole rows of {sequence} tokens", nameof(targets));
        if (length >= sequence) return;
        for (int row = 0; row < targets.Length; row += sequence)
            targets.Slice(row + Math.Max(length, 0), sequence - Math.Max(length, 0)).Fill(CrossEntropyKernels.IgnoreIndex);
    }

    /// <summary>One line for the trainer's start-up report.</summary>
    public string Describe(int sequence)
    {
        string schedule = config.ScheduleType == CurriculumScheduleType.FixedDiscrete
            ? $"fixed_discrete [{string.Join(", ", config.Difficulties)}] up to steps [{string.Join(", ", config.MaxSteps)}]"
            : $"{CurriculumLearningConfig.ScheduleName(config.ScheduleType)} {N(config.MinDifficulty)} → {N(config.MaxDifficulty)} tokens over {N(config.TotalCurriculumStep)} steps in multiples of {N(config.DifficultyStep)}" +
              (config.ScheduleType == CurriculumScheduleType.FixedRoot ? $", root degree {config.RootDegree.ToString(CultureInfo.InvariantCulture)}" : "");
        string full = FirstFullLengthStep(sequence) is { } step
            ? $"full context ({N(sequence)}) from step {N(step)}"
            : $"never the full context ({N(sequence)}) on this schedule";
        return $"curriculum: sequence length {schedule}; {full}; targets past the length are left out of the loss " +
               "(the gradients of truncated sequences under causal attention, at the full sequence's cost)";
    }

    /// <summary>The first step (1-based, as the progress lines count) that trains on the whole sequence, if any within the schedule.</summary>
    public long? FirstFullLengthStep(int sequence)
    {
        var probe = new SequenceLengthCurriculum(config);
        long horizon = config.ScheduleType == CurriculumScheduleType.FixedDiscrete
            ? (config.MaxSteps.Count == 0 ? 0 : config.MaxSteps[^1]) + 1
            : config.TotalCurriculumStep;
        // The schedule stops changing at its horizon; every step up to it is checked (a replay, microseconds each).
        for (long completed = 0; completed <= horizon; completed++)
        {
            if (probe.LengthAt(completed) >= sequence) return completed + 1;
        }

        return null;
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
