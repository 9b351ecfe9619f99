using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Examples;
using Shardwise.Training.Cli;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// TinyGpt (its blocks are <c>[TokenDrop]</c>) trained under random-LTD: the trainer reports the schedule; a schedule
/// that keeps every token is the plain run exactly, one that keeps fewer is not from the first step; a run resumed
/// mid-way equals the straight one bit for bit (the draws follow the step, not the process); validation runs every
/// token; the flops profiler counts the tokens run. That a block on its kept tokens is differentiated exactly is
/// TokenDropTests (Models.Tests); that data-parallel ranks draw what one process does is ZeroEquivalenceTests.
/// </summary>
[TestClass]
public sealed class TokenDropTrainingTests
{
    private static string Section(int min, int max = 64, string extra = "") => $$"""
        "data_efficiency": { "enabled": true, "data_routing": { "enabled": true, "random_ltd": { "enabled": true,
            "total_layer_num": 4, "random_ltd_layer_num": 2, "random_ltd_layer_id": [1, 2], "model_type": "decoder",
            "random_ltd_schedule": { "min_value": {{min}}, "max_value": {{max}}, "schedule_type": "fixed_linear",
                                     "schedule_config": { "require_steps": 20, "seq_per_step": 8 } } } } }, {{extra}}
        """;

    [TestMethod]
    public void TinyGptTrainsWithRandomLtd_ResumesBitForBit_AndValidatesEveryToken()
    {
        var root = TrainerRun.TempDirectory();
        var data = TrainerRun.SharedData("tinyshakespeare.txt");
        string plain = TrainerRun.WriteSmallConfig(root, "plain.json", ""),
            dropping = TrainerRun.WriteSmallConfig(root, "ltd.json", Section(min: 16)),
            everyToken = TrainerRun.WriteSmallConfig(root, "every.json", Section(min: 64));
        string[] Train(string config, string output, int steps) =>
            ["train", "--config", config, "--data", data, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--output", output,
             "--eval-interval", "6", "--eval-batches", "2", "--save-interval", "3"];

        string straight = Path.Combine(root, "straight"), split = Path.Combine(root, "split");
        string log = TrainerRun.Succeed(Train(dropping, straight, 6));
        StringAssert.Contains(log, "random-LTD: layers 1, 2 of 4 keep 16→64 tokens (fixed_linear, +8 about every 3.33 steps); all 64 tokens once 20 steps are done");
        TrainerRun.Succeed(Train(dropping, split, 3));
        TrainerRun.Succeed(["train", "--config", dropping, "--steps", "6", "--resume", split, "--output", split, "--eval-interval", "6",
            "--eval-batches", "2", "--save-interval", "3"]);
        double[] losses = TrainerRun.MetricsColumn(straight, "loss");
        Assert.AreEqual(6, losses.Length);
        CollectionAssert.AreEqual(losses, TrainerRun.MetricsColumn(split, "loss"), "straight against 3 steps + resume + 3 steps");

        string without = Path.Combine(root, "plain"), all = Path.Combine(root, "every");
        TrainerRun.Succeed(Train(plain, without, 6));
        TrainerRun.Succeed(Train(everyToken, all, 6));
        double[] plainLosses = TrainerRun.MetricsColumn(without, "loss");
        CollectionAssert.AreEqual(plainLosses, TrainerRun.MetricsColumn(all, "loss"), "min_value = the sequence keeps every token");
        Assert.IsTrue(losses.Zip(plainLosses).All(p => p.First != p.Second), "16 of 64 tokens in the middle blocks from the first step");

        // The run's validation at step 6 ran every token: eval of the checkpoint (which never drops) agrees.
        double trained = TrainerRun.MetricsColumn(straight, "val_loss").Last(v => !double.IsNaN(v));
        string eval = TrainerRun.Succeed("eval", "--config", dropping, "--resume", straight, "--data", data, "--eval-batches", "2");
        StringAssert.Contains(eval, "validation loss " + trained.ToString("F4", CultureInfo.InvariantCulture));
    }

    [TestMethod]
    public void PlanSaysWhatTheScheduleSaves()
    {
        var root = TrainerRun.TempDirectory();
        string output = TrainerRun.Succeed("plan", "--config", TrainerRun.WriteSmallConfig(root, "ltd.json", Section(min: 16)));
        StringAssert.Contains(output, "random-LTD: layers 1, 2 of 4 keep 16→64 tokens");

        // From the generated costs: blocks 1 and 2 at 16 of 64 tokens, their attention at (1/4)².
        double total = 0, rowWise = 0, attention = 0;
        foreach (var op in TinyGpt.OperationCosts)
        {
            double flops = op.ForwardFlopsPerSample + op.BackwardFlopsPerSample;
            total += flops;
            bool listed = op.Layer is "blocks.1" or "blocks.2" // the blocks' residual adds
                || op.Layer.StartsWith("blocks.1.", StringComparison.Ordinal) || op.Layer.StartsWith("blocks.2.", StringComparison.Ordinal);
            if (!listed) continue;
            if (op.Operation == "Attention") attention += flops;
            else rowWise += flops;
        }
        double first = (total - (0.75 * rowWise) - ((1 - (1.0 / 16)) * attention)) / total;
        StringAssert.Contains(output, FormattableString.Invariant($"the listed layers are {100 * (rowWise + attention) / total:F1}% of a step's FLOPs; the first step does about {100 * first:F1}% of the full step's, the 20 steps until every token runs about "));
        var mean = System.Text.RegularExpressions.Regex.Match(output, @"the 20 steps until every token runs about ([\d.]+)% on average");
        Assert.IsTrue(mean.Success, output);
        double average = double.Parse(mean.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.IsTrue(average > 100 * first && average < 100, $"the mean {average}% lies between the first step's and every token's");
    }

    [TestMethod]
    public void TheFlopsProfilerCountsTheTokensTheProfiledStepRan()
    {
        var root = TrainerRun.TempDirectory();
        const string Profiler = """ "flops_profiler": { "enabled": true, "profile_step": 2 }, """;
        string plain = TrainerRun.WriteSmallConfig(root, "plain.json", Profiler), dropping = TrainerRun.WriteSmallConfig(root, "ltd.json", Section(min: 16, extra: Profiler));
        double Forward(string config, string name)
        {
            string output = TrainerRun.Succeed("train", "--config", config, "--steps", "3", "--eval-interval", "0", "--output", Path.Combine(root, name));
            var line = System.Text.RegularExpressions.Regex.Match(output, @"fwd FLOPs per micro-batch:\s+([\d.]+) MFLOPs");
            Assert.IsTrue(line.Success, output);
            return double.Parse(line.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        double every = Forward(plain, "plain"), ran = Forward(dropping, "ltd");
        // Step 2 keeps 16 + ⌊2/20 · 48⌋ = 20 → 16 tokens in blocks 1 and 2: their row-wise ops a quarter, attention a sixteenth.
        Assert.IsTrue(ran < 0.8 * every, $"the profiled step ran {ran} of {every} MFLOPs");
        Assert.IsTrue(ran > 0.4 * every, $"blocks 0 and 3, the embedding and the head run every token: {ran} of {every} MFLOPs");
    }

    [TestMethod]
    public void ConfigsThatDoNotFitTheModelStopBeforeTraining()
    {
        var root = TrainerRun.TempDirectory();
        // DeepSpeedExamples' GPT-2 medium random-LTD config: 24 layers, ids 1-22; TinyGpt has 4.
        string corpus = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(TrainerRun.SharedData("x"))!, "..", "ds_configs", "11_dse_data_efficiency_random_ltd.json"));
        var (planCode, planned, planErrors) = TrainerRun.Run(["plan", "--config", corpus]);
        Assert.AreNotEqual(0, planCode);
        string error = planErrors + planned;
        StringAssert.Contains(error, "$.data_efficiency.data_routing.random_ltd.total_layer_num is 24, but TinyGpt has 4 [TokenDrop] layers: set it to 4");
        StringAssert.Contains(error, "$.data_efficiency.data_routing.random_ltd.random_ltd_layer_id[3] is 4 (and 18 more ids past it), but TinyGpt has 4 [TokenDrop] layers (0 to 3)");

        // A model without [TokenDrop] layers.
        string config = TrainerRun.WriteSmallConfig(root, "ltd.json", Section(min: 16));
        var (code, output, errors) = TrainerRun.Run<SmallGpt>(["train", "--config", config, "--steps", "1", "--output", Path.Combine(root, "run")]);
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(errors + output, "ltd.json: $.data_efficiency.data_routing.random_ltd.enabled is true, but SmallGpt has no [TokenDrop] layer");
        Assert.IsFalse(Directory.Exists(Path.Combine(root, "run")), "nothing was trained or written");
    }
}
