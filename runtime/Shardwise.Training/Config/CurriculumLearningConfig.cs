using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>How a curriculum's difficulty grows with the step (DeepSpeed's <c>schedule_type</c>).</summary>
public enum CurriculumScheduleType
{
    /// <summary>Linear from min to max over total_curriculum_step, in multiples of difficulty_step.</summary>
    FixedLinear,

    /// <summary>(step / total)^(1 / root_degree) of the way from min to max, in multiples of difficulty_step.</summary>
    FixedRoot,

    /// <summary>difficulty[i] up to max_step[i], the last difficulty after the last max_step.</summary>
    FixedDiscrete,
}

/// <summary>
/// The legacy "curriculum_learning" section (deepspeed/runtime/config.py, get_curriculum_params_legacy; the
/// scheduler is deepspeed/runtime/data_pipeline/curriculum_scheduler.py) with curriculum_type "seqlen": the
/// sequence length grows from min_difficulty to max_difficulty. Null when the section is absent or switched off
/// (DeepSpeed reads nothing else then either). Applied by <see cref="Curriculum.SequenceLengthCurriculum"/>.
/// </summary>
public sealed record CurriculumLearningConfig
{
    public required int MinDifficulty { get; init; }

    public required int MaxDifficulty { get; init; }

    public required CurriculumScheduleType ScheduleType { get; init; }

    /// <summary>The JSON path of the section that asked for the curriculum, for errors that involve it.</summary>
    public string Source { get; init; } = "$.curriculum_learning";

    /// <summary>fixed_linear and fixed_root: the step at which the difficulty reaches max_difficulty.</summary>
    public long TotalCurriculumStep { get; init; }

    /// <summary>fixed_linear and fixed_root: every difficulty is rounded down to a multiple of this.</summary>
    public int DifficultyStep { get; init; } = 1;

    /// <summary>fixed_root: 2 is a square root; 1 is fixed_linear.</summary>
    public double RootDegree { get; init; } = 1;

    /// <summary>fixed_discrete: the difficulties, one more than <see cref="MaxSteps"/>.</summary>
    public IReadOnlyList<int> Difficulties { get; init; } = [];

    /// <summary>fixed_discrete: the last step of each difficulty but the last.</summary>
    public IReadOnlyList<long> MaxSteps { get; init; } = [];

    private static readonly Dictionary<string, CurriculumScheduleType> ScheduleNames = new(StringComparer.Ordinal)
    {
        ["fixed_linear"] = CurriculumScheduleType.FixedLinear,
        ["fixed_root"] = CurriculumScheduleType.FixedRoot,
        ["fixed_discrete"] = CurriculumScheduleType.FixedDiscrete,
    };

    public static string ScheduleName(CurriculumScheduleType type) => ScheduleNames.First(pair => pair.Value == type).Key;

    internal static CurriculumLearningConfig? Read(JsonSection root)
    {
        var section = root.Section("curriculum_learning");
        if (section.Bool("enabled") != true)
        {
            // Off (or absent): DeepSpeed reads none of the rest, and neither do we, so nothing in it is reported.
            section.SkipRest();
            return null;
        }

        string? type = section.String("curriculum_type");
        if (type is null) section.Diagnostics.ErrorSentence(section.PathOf("curriculum_type"), "is required: \"seqlen\" (DeepSpeed asserts it too)");
        else if (type != "seqlen")
            section.Error("curriculum_type", $"\"{type}\" is not supported: only \"seqlen\" is (Shardwise shortens the sequences itself; other metrics need the data efficiency library's offline indexes)");

        var config = ReadSchedule(section);
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }

    /// <summary>
    /// min_difficulty, max_difficulty, schedule_type and schedule_config: the schedule of the legacy section and of a
    /// data efficiency curriculum metric alike (both feed DeepSpeed's CurriculumScheduler).
    /// </summary>
    internal static CurriculumLearningConfig ReadSchedule(JsonSection section)
    {
        int min = section.Int32("min_difficulty", AutoRule.NotAllowed, min: 1) ?? Required(section, "min_difficulty");
        int max = section.Int32("max_difficulty", AutoRule.NotAllowed, min: 1) ?? Required(section, "max_difficulty");
        if (max < min) section.Error("max_difficulty", $"{max} is below min_difficulty ({min})");

        string? scheduleName = section.String("schedule_type");
        CurriculumScheduleType schedule = CurriculumScheduleType.FixedLinear;
        if (scheduleName is null) section.Diagnostics.ErrorSentence(section.PathOf("schedule_type"), "is required: fixed_linear, fixed_root or fixed_discrete");
        else if (ScheduleNames.TryGetValue(scheduleName, out var known)) schedule = known;
        else if (scheduleName == "custom")
            section.Error("schedule_type", "\"custom\" needs a Python difficulty function (set_custom_curriculum_learning_schedule); use fixed_linear, fixed_root or fixed_discrete");
        else
        {
            string hint = DidYouMean.Suggest(scheduleName, ScheduleNames.Keys) is { } close ? $" (did you mean \"{close}\"?)" : "";
            section.Error("schedule_type", $"unknown schedule \"{scheduleName}\"{hint}: use fixed_linear, fixed_root or fixed_discrete");
        }

        var config = new CurriculumLearningConfig { MinDifficulty = min, MaxDifficulty = max, ScheduleType = schedule, Source = section.Path };
        var parameters = section.Section("schedule_config");
        config = schedule == CurriculumScheduleType.FixedDiscrete ? ReadDiscrete(parameters, config) : ReadRoot(parameters, config, schedule);
        UnsupportedFeaturePolicy.ReportLeftovers(parameters);
        return config;
    }

    private static CurriculumLearningConfig ReadRoot(JsonSection parameters, CurriculumLearningConfig config, CurriculumScheduleType schedule)
    {
        long total = parameters.Integer("total_curriculum_step", AutoRule.NotAllowed, min: 1) ?? Required(parameters, "total_curriculum_step");
        int step = parameters.Int32("difficulty_step", AutoRule.NotAllowed, min: 1) ?? Required(parameters, "difficulty_step");
        double degree = 1;
        if (schedule == CurriculumScheduleType.FixedRoot)
        {
            degree = parameters.Number("root_degree", AutoRule.NotAllowed) ?? Required(parameters, "root_degree");
            if (!(degree > 0)) parameters.Error("root_degree", $"{JsonSection.Format(degree)} is out of range: must be > 0");
        }

        return config with { TotalCurriculumStep = total, DifficultyStep = step, RootDegree = degree };
    }

    private static CurriculumLearningConfig ReadDiscrete(JsonSection parameters, CurriculumLearningConfig config)
    {
        var difficulties = IntegerList(parameters, "difficulty");
        var maxSteps = IntegerList(parameters, "max_step");
        if (difficulties is null || maxSteps is null) return config;
        if (difficulties.Count == 0) parameters.Diagnostics.ErrorSentence(parameters.PathOf("difficulty"), "is empty: list at least one difficulty");
        if (difficulties.Count != maxSteps.Count + 1)
            parameters.Diagnostics.ErrorSentence(parameters.PathOf("max_step"), $"has {maxSteps.Count} entries for {difficulties.Count} difficulties: it needs one fewer (the last difficulty holds for every later step)");
        for (int i = 0; i < difficulties.Count; i++)
        {
            if (difficulties[i] < 1) parameters.Diagnostics.Error($"{parameters.PathOf("difficulty")}[{i}]", $"{difficulties[i]} is out of range: a sequence length must be >= 1");
        }

        return config with { Difficulties = difficulties.Select(d => (int)Math.Min(d, int.MaxValue)).ToArray(), MaxSteps = maxSteps };
    }

    private static List<long>? IntegerList(JsonSection section, string key)
    {
        if (!section.TryTake(key, out var value))
        {
            section.Diagnostics.ErrorSentence(section.PathOf(key), "is required for fixed_discrete");
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            section.Error(key, $"expected a list of integers, found {JsonSection.Describe(value)}");
            return null;
        }

        var list = new List<long>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.Number && item.TryGetInt64(out long n)) list.Add(n);
            else section.Diagnostics.Error($"{section.PathOf(key)}[{index}]", $"expected an integer, found {JsonSection.Describe(item)}");
            index++;
        }

        return list;
    }

    private static int Required(JsonSection section, string key)
    {
        if (!section.Has(key)) section.Diagnostics.ErrorSentence(section.PathOf(key), "is required when curriculum learning is enabled");
        return 1;
    }
}
