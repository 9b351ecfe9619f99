using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Training.Config;
using Shardwise.Training.Curriculum;

namespace Shardwise.Training.Tests;

/// <summary>
/// The legacy curriculum_learning section and its schedule: DeepSpeed's CurriculumScheduler replayed step by step
/// (the engine's update_difficulty(global_steps + 1) before each forward, the difficulty frozen once it reaches
/// max_difficulty), values worked out by hand for config 19's schedule, the masking of targets, and errors at their
/// JSON paths.
/// </summary>
[TestClass]
public sealed class CurriculumLearningTests
{
    private static ConfigLoadResult Parse(string curriculum, string extra = "") =>
        DeepSpeedConfig.Parse($$"""{"train_batch_size": 8, {{extra}} "curriculum_learning": {{curriculum}}}""", "ds.json");

    private static ConfigException Fails(string curriculum, string extra = "") =>
        Assert.ThrowsExactly<ConfigException>(() => Parse(curriculum, extra));

    private static CurriculumLearningConfig Config19Enabled()
    {
        string text = File.ReadAllText(TestPaths.Config("19_mds_moe_curriculum_learning.json"))
            .Replace("\"enabled\": false,\n    \"curriculum_type\"", "\"enabled\": true,\n    \"curriculum_type\"", StringComparison.Ordinal);
        var result = DeepSpeedConfig.Parse(text, "19 enabled");
        return result.Config.CurriculumLearning ?? throw new AssertFailedException("config 19 with enabled: true has no curriculum");
    }

    [TestMethod]
    public void Config19_LoadsOffAsWritten_AndItsScheduleWhenSwitchedOn()
    {
        Assert.IsNull(DeepSpeedConfig.Load(TestPaths.Config("19_mds_moe_curriculum_learning.json")).Config.CurriculumLearning, "enabled: false");
        var config = Config19Enabled();
        Assert.AreEqual((72, 2048, CurriculumScheduleType.FixedLinear, 221108L, 8), (config.MinDifficulty, config.MaxDifficulty, config.ScheduleType, config.TotalCurriculumStep, config.DifficultyStep));
    }

    /// <summary>
    /// fixed_linear at config 19's numbers, by hand: floor(s / 221108 · 1976 + 72) rounded down to a multiple of 8.
    /// Step 1: 72.0089 → 72. Step 110554 (half way): 1060 → 1056. Step 221108: 2048. The first step past 72 is the
    /// first s with s · 1976 / 221108 ≥ 8, s = 896 (895.17 rounded up).
    /// </summary>
    [TestMethod]
    public void FixedLinear_HandWorkedPoints()
    {
        var curriculum = new SequenceLengthCurriculum(Config19Enabled());
        Assert.AreEqual(72, curriculum.LengthAt(0), "the first step trains on update_difficulty(1)");
        Assert.AreEqual(72, curriculum.LengthAt(894), "step 895");
        Assert.AreEqual(80, curriculum.LengthAt(895), "step 896");
        Assert.AreEqual(1056, curriculum.LengthAt(110553), "step 110554");
        Assert.AreEqual(2040, curriculum.LengthAt(221106), "step 221107: 2047.99 → 2040");
        Assert.AreEqual(2048, curriculum.LengthAt(221107), "step 221108");
        Assert.AreEqual(2048, curriculum.LengthAt(500000));
        Assert.AreEqual(80, curriculum.LengthAt(895), "asked again for an earlier step: replayed from the start");
        Assert.AreEqual(221108L, curriculum.FirstFullLengthStep(2048));
        Assert.AreEqual(896L, curriculum.FirstFullLengthStep(80));
    }

    /// <summary>fixed_root with root_degree 2: at a quarter of the steps, half of the way (1060 → 1056).</summary>
    [TestMethod]
    public void FixedRoot_SquareRoot()
    {
        var config = Parse("""
            {"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 72, "max_difficulty": 2048, "schedule_type": "fixed_root",
             "schedule_config": {"total_curriculum_step": 4000, "difficulty_step": 8, "root_degree": 2}}
            """).Config.CurriculumLearning!;
        var curriculum = new SequenceLengthCurriculum(config);
        Assert.AreEqual(1056, curriculum.LengthAt(999), "step 1000 = total / 4");
        Assert.AreEqual(2048, curriculum.LengthAt(3999));
        // sqrt(1/4000) · 1976 + 72 = 103.2 → 96 at the first step: the root schedule starts fast.
        Assert.AreEqual(96, new SequenceLengthCurriculum(config).LengthAt(0));
    }

    /// <summary>
    /// Every step of three schedules against a literal transcription of curriculum_scheduler.py kept in this test:
    /// a state that update_difficulty(global_steps + 1) changes only while it is below max_difficulty.
    /// </summary>
    [TestMethod]
    public void EveryStep_MatchesAReplayOfDeepSpeedsScheduler()
    {
        string[] schedules =
        [
            """{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 10, "max_difficulty": 100, "schedule_type": "fixed_linear", "schedule_config": {"total_curriculum_step": 300, "difficulty_step": 8}}""",
            """{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 16, "max_difficulty": 256, "schedule_type": "fixed_root", "schedule_config": {"total_curriculum_step": 500, "difficulty_step": 16, "root_degree": 3}}""",
            // Not monotone: 64 reaches max_difficulty at step 11, so the later 32 never comes (DeepSpeed's state freezes).
            """{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_discrete", "schedule_config": {"difficulty": [8, 16, 64, 32], "max_step": [5, 10, 20]}}""",
        ];
        foreach (string json in schedules)
        {
            var config = Parse(json).Config.CurriculumLearning!;
            var curriculum = new SequenceLengthCurriculum(config);
            var reference = new DeepSpeedCurriculumScheduler(config);
            var seen = new HashSet<int>();
            for (long globalSteps = 0; globalSteps < 700; globalSteps++)
            {
                int expected = reference.UpdateDifficulty(globalSteps + 1);
                Assert.AreEqual(expected, curriculum.LengthAt(globalSteps), $"{config.ScheduleType}, global step {globalSteps}");
                seen.Add(expected);
            }

            Assert.IsTrue(seen.Count >= 3, $"{config.ScheduleType}: the schedule moved ({string.Join(", ", seen)})");
            if (config.ScheduleType == CurriculumScheduleType.FixedDiscrete) Assert.IsFalse(seen.Contains(32), "frozen at max_difficulty");
        }
    }

    [TestMethod]
    public void MaskTargets_IgnoresEveryPositionFromTheLengthOn()
    {
        int[] targets = Enumerable.Range(1, 12).ToArray(); // three rows of four
        SequenceLengthCurriculum.MaskTargets(targets, sequence: 4, length: 3);
        const int X = CrossEntropyKernels.IgnoreIndex;
        CollectionAssert.AreEqual(new[] { 1, 2, 3, X, 5, 6, 7, X, 9, 10, 11, X }, targets);
        int[] unchanged = Enumerable.Range(1, 8).ToArray();
        SequenceLengthCurriculum.MaskTargets(unchanged, sequence: 4, length: 4);
        CollectionAssert.AreEqual(Enumerable.Range(1, 8).ToArray(), unchanged, "the full length masks nothing");
        Assert.ThrowsExactly<ArgumentException>(() => SequenceLengthCurriculum.MaskTargets(new int[7], 4, 2));
    }

    [TestMethod]
    public void Describe_SaysWhenTheFullContextArrives()
    {
        var curriculum = new SequenceLengthCurriculum(Config19Enabled());
        string line = curriculum.Describe(1024);
        StringAssert.Contains(line, "fixed_linear 72 → 2,048 tokens over 221,108 steps in multiples of 8");
        // floor(s · 1976 / 221108 + 72) ≥ 1024 from s = 952 · 221108 / 1976 = 106,525.7 → 106,526.
        StringAssert.Contains(line, "full context (1,024) from step 106,526");
        Assert.AreEqual(1024, curriculum.LengthAt(106525));
        Assert.AreEqual(1016, curriculum.LengthAt(106524));
    }

    [TestMethod]
    public void PrintConfig_ListsTheCurriculum()
    {
        string described = Parse("""
            {"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_discrete",
             "schedule_config": {"difficulty": [8, 64], "max_step": [100]}}
            """).Config.Describe();
        StringAssert.Contains(described, "$.curriculum_learning.schedule_config.difficulty = [8, 64]");
        StringAssert.Contains(described, "$.curriculum_learning.schedule_type = fixed_discrete");
        StringAssert.Contains(DeepSpeedConfig.Parse("""{"train_batch_size": 8}""").Config.Describe(), "$.curriculum_learning.enabled = false");
    }

    [TestMethod]
    public void BadSections_FailAtTheirPaths()
    {
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "voc", "min_difficulty": 1, "max_difficulty": 4, "schedule_type": "fixed_linear", "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 1}}""").Message,
            "$.curriculum_learning.curriculum_type: \"voc\" is not supported: only \"seqlen\" is");
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 64, "max_difficulty": 8, "schedule_type": "fixed_linear", "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 1}}""").Message,
            "$.curriculum_learning.max_difficulty: 8 is below min_difficulty (64)");
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear", "schedule_config": {"difficulty_step": 8}}""").Message,
            "$.curriculum_learning.schedule_config.total_curriculum_step is required when curriculum learning is enabled");
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linaer", "schedule_config": {}}""").Message,
            "$.curriculum_learning.schedule_type: unknown schedule \"fixed_linaer\" (did you mean \"fixed_linear\"?)");
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "custom"}""").Message,
            "\"custom\" needs a Python difficulty function");
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_discrete", "schedule_config": {"difficulty": [8, 64], "max_step": [5, 10]}}""").Message,
            "$.curriculum_learning.schedule_config.max_step has 2 entries for 2 difficulties: it needs one fewer");
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_discrete", "schedule_config": {"difficulty": [8, "x"], "max_step": [5]}}""").Message,
            "$.curriculum_learning.schedule_config.difficulty[1]: expected an integer");
        var typo = Parse("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear", "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8, "difficulty_stepp": 2}}""");
        Assert.IsTrue(typo.Warnings.Any(w => w.StartsWith("$.curriculum_learning.schedule_config.difficulty_stepp: unknown key", StringComparison.Ordinal)), string.Join("\n", typo.Warnings));
        StringAssert.Contains(Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear", "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8}}""",
                """ "sparse_attention": {"mode": "fixed", "attention": "bidirectional"}, """).Message,
            "$.curriculum_learning: a sequence-length curriculum masks the targets past the current length");
        // The same clash through the data efficiency library names the library's section.
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse($$"""
            {"train_batch_size": 8, "sparse_attention": {"mode": "fixed", "attention": "bidirectional"}, {{LibraryCurriculum}} }
            """, "ds.json")).Message,
            "$.data_efficiency.data_sampling.curriculum_learning.curriculum_metrics.seqlen_truncate: a sequence-length curriculum masks the targets");
    }

    private const string LibraryCurriculum = """
        "data_efficiency": {"enabled": true, "seed": 1234,
          "data_routing": {"enabled": false, "random_ltd": {"enabled": true}},
          "data_sampling": {"enabled": true, "num_workers": 0, "curriculum_learning": {"enabled": true, "data_cluster_path": "/tmp/clusters",
            "curriculum_metrics": {"seqlen_truncate": {"index_to_sample_path": "dummy", "index_to_metric_path": "dummy", "difficulty_type": "value",
              "clustering_type": "single_cluster", "min_difficulty": 80, "max_difficulty": 1024, "schedule_type": "fixed_root",
              "schedule_config": {"total_curriculum_step": 500, "difficulty_step": 8, "root_degree": 2}}}}}}
        """;

    /// <summary>data_efficiency's seqlen_truncate metric (Megatron-DeepSpeed's spelling) is the same schedule as the legacy section.</summary>
    [TestMethod]
    public void DataEfficiencySeqlenTruncate_IsTheLegacyCurriculum()
    {
        var result = DeepSpeedConfig.Parse($$"""{"train_batch_size": 8, {{LibraryCurriculum}} }""", "ds.json");
        var library = result.Config.CurriculumLearning!;
        var legacy = Parse("""
            {"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 80, "max_difficulty": 1024, "schedule_type": "fixed_root",
             "schedule_config": {"total_curriculum_step": 500, "difficulty_step": 8, "root_degree": 2}}
            """).Config.CurriculumLearning!;
        Assert.AreEqual((legacy.MinDifficulty, legacy.MaxDifficulty, legacy.ScheduleType, legacy.TotalCurriculumStep, legacy.DifficultyStep, legacy.RootDegree),
            (library.MinDifficulty, library.MaxDifficulty, library.ScheduleType, library.TotalCurriculumStep, library.DifficultyStep, library.RootDegree));
        StringAssert.Contains(string.Join("\n", result.Warnings), "$.data_efficiency.seed: the library's sampling seed");
        StringAssert.Contains(string.Join("\n", result.Warnings), "$.data_efficiency.data_sampling.num_workers");
        Assert.IsFalse(result.Warnings.Any(w => w.Contains("random_ltd", StringComparison.Ordinal)), "data_routing is off: not read");
    }

    [TestMethod]
    public void DataEfficiency_RefusesWhatItCannotDo()
    {
        Assert.IsNotNull(DeepSpeedConfig.Load(TestPaths.Config("11_dse_data_efficiency_random_ltd.json")).Config.RandomLtd, "11: random-LTD is parsed (RandomLtdTests)");
        Assert.IsNull(DeepSpeedConfig.Load(TestPaths.Config("20_mds_data_efficiency_sampling.json")).Config.CurriculumLearning, "20: every part switched off");

        var rarity = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            {"train_batch_size": 8, "data_efficiency": {"enabled": true, "data_sampling": {"enabled": true, "curriculum_learning": {"enabled": true,
              "curriculum_metrics": {"vocabularyrarity": {"min_difficulty": 1, "max_difficulty": 2}}}}}}
            """, "ds.json"));
        StringAssert.Contains(rarity.Message, "$.data_efficiency.data_sampling.curriculum_learning.curriculum_metrics.vocabularyrarity: known DeepSpeed feature not supported by Shardwise yet: curriculum metric \"vocabularyrarity\"");
        Assert.AreEqual(1, rarity.Errors.Count, rarity.Message);

        var both = Fails("""{"enabled": true, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear", "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8}}""",
            LibraryCurriculum + ",");
        StringAssert.Contains(both.Message, "$.data_efficiency.data_sampling.curriculum_learning asks for a sequence-length curriculum and so does $.curriculum_learning");
    }

    [TestMethod]
    public void SwitchedOff_ReadsNothingElse()
    {
        var result = Parse("""{"enabled": false, "curriculum_type": "voc", "whatever": 1}""");
        Assert.IsNull(result.Config.CurriculumLearning);
        Assert.AreEqual(0, result.Warnings.Count, string.Join("\n", result.Warnings));
    }

    /// <summary>curriculum_scheduler.py's CurriculumScheduler, transcribed line for line (fixed_* schedules only).</summary>
    private sealed class DeepSpeedCurriculumScheduler(CurriculumLearningConfig config)
    {
        private int currentDifficulty = config.MinDifficulty;

        public int UpdateDifficulty(long globalSteps)
        {
            if (currentDifficulty < config.MaxDifficulty) currentDifficulty = GetDifficulty(globalSteps);
            return currentDifficulty;
        }

        private int GetDifficulty(long globalSteps) => config.ScheduleType switch
        {
            CurriculumScheduleType.FixedDiscrete => FixedDiscrete(globalSteps),
            CurriculumScheduleType.FixedLinear => FixedRoot(globalSteps, 1),
            _ => FixedRoot(globalSteps, config.RootDegree),
        };

        private int FixedDiscrete(long globalSteps)
        {
            if (globalSteps > config.MaxSteps[^1]) return config.Difficulties[^1];
            for (int i = 0; i < config.MaxSteps.Count; i++)
                if (globalSteps <= config.MaxSteps[i]) return config.Difficulties[i];
            throw new InvalidOperationException("unreachable in DeepSpeed too");
        }

        private int FixedRoot(long globalSteps, double rootDegree)
        {
            double nextDifficulty = Math.Pow((double)globalSteps / config.TotalCurriculumStep, 1.0 / rootDegree);
            long next = (long)Math.Floor(nextDifficulty * (config.MaxDifficulty - config.MinDifficulty) + config.MinDifficulty);
            next -= next % config.DifficultyStep;
            return (int)Math.Min(next, config.MaxDifficulty);
        }
    }
}
