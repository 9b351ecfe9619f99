using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// TinyGpt trained under a sequence-length curriculum (curriculum_learning, fixed_discrete: 16 of 64 tokens for the
/// first 4 steps, then all 64): the trainer reports the schedule, the curriculum changes exactly the steps it covers,
/// and a run resumed across the switch equals the straight run bit for bit (the length follows the restored step,
/// not the process). That masking equals truncation is CurriculumMaskingTests (Models.Tests).
/// </summary>
[TestClass]
public sealed class CurriculumTrainingTests
{
    private const string Schedule = """
        "curriculum_learning": { "enabled": true, "curriculum_type": "seqlen", "min_difficulty": 16, "max_difficulty": 64,
          "schedule_type": "fixed_discrete", "schedule_config": { "difficulty": [16, 64], "max_step": [4] } },
        """;

    [TestMethod]
    public void ACurriculumChangesItsStepsOnly_AndResumesAcrossItsSwitch()
    {
        var root = TrainerRun.TempDirectory();
        var data = TrainerRun.SharedData("tinyshakespeare.txt");
        string plain = TrainerRun.WriteSmallConfig(root, "plain.json", ""), curriculum = TrainerRun.WriteSmallConfig(root, "curriculum.json", Schedule);
        string[] Train(string config, string output, int steps) =>
            ["train", "--config", config, "--data", data, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--output", output,
             "--eval-interval", "0", "--save-interval", "3"];

        string straight = Path.Combine(root, "straight"), split = Path.Combine(root, "split"), without = Path.Combine(root, "without");
        string log = TrainerRun.Succeed(Train(curriculum, straight, 6));
        StringAssert.Contains(log, "curriculum: sequence length fixed_discrete [16, 64] up to steps [4]; full context (64) from step 5");
        TrainerRun.Succeed(Train(plain, without, 1));
        TrainerRun.Succeed(Train(curriculum, split, 3));
        StringAssert.Contains(TrainerRun.Succeed(["train", "--config", curriculum, "--steps", "6", "--resume", split, "--output", split, "--eval-interval", "0", "--save-interval", "3"]),
            "resumed from");

        double[] curriculumLosses = Losses(straight), resumedLosses = Losses(split);
        Assert.AreEqual(6, curriculumLosses.Length);
        CollectionAssert.AreEqual(curriculumLosses, resumedLosses, "straight against 3 steps + resume + 3 steps, across the switch at step 5");
        // The first step of both runs starts from the same weights and batch: only the 48 masked positions differ.
        Assert.AreNotEqual(Losses(without)[0], curriculumLosses[0], "the curriculum's first step left positions out of the loss");
    }

    private static double[] Losses(string run) => TrainerRun.MetricsColumn(run, "loss");
}
