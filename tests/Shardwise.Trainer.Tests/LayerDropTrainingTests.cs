using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Cli;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// TinyGpt (its blocks are <c>[LayerDrop]</c>) trained under progressive_layer_drop: the trainer reports the schedule;
/// the first step is the plain run's (θ starts at 1), later ones are not; theta 1 is the plain run exactly; a run
/// resumed mid-way equals the straight one bit for bit (the draws follow the step, not the process); validation runs
/// every layer. That a micro-batch's skipped and scaled blocks are differentiated exactly is LayerDropTests (Models.Tests).
/// </summary>
[TestClass]
public sealed class LayerDropTrainingTests
{
    [TestMethod]
    public void TinyGptTrainsWithProgressiveLayerDrop_ResumesBitForBit_AndValidatesEveryLayer()
    {
        var root = TrainerRun.TempDirectory();
        var data = TrainerRun.SharedData("tinyshakespeare.txt");
        string plain = TrainerRun.WriteSmallConfig(root, "plain.json", ""),
            dropping = TrainerRun.WriteSmallConfig(root, "pld.json", """ "progressive_layer_drop": { "enabled": true, "theta": 0.5, "gamma": 0.5 }, """),
            never = TrainerRun.WriteSmallConfig(root, "never.json", """ "progressive_layer_drop": { "enabled": true, "theta": 1.0, "gamma": 0.5 }, """);
        string[] Train(string config, string output, int steps) =>
            ["train", "--config", config, "--data", data, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--output", output,
             "--eval-interval", "6", "--eval-batches", "2", "--save-interval", "3"];

        string straight = Path.Combine(root, "straight"), split = Path.Combine(root, "split");
        string log = TrainerRun.Succeed(Train(dropping, straight, 6));
        StringAssert.Contains(log, "progressive layer drop: keep probability θ(t) = (1 − 0.5)·exp(−0.5·t) + 0.5, layer i of 4 kept with 1 − (i/4)(1 − θ) " +
            "and scaled by its inverse; layers blocks.0, blocks.1, blocks.2, blocks.3");
        TrainerRun.Succeed(Train(dropping, split, 3));
        TrainerRun.Succeed(["train", "--config", dropping, "--steps", "6", "--resume", split, "--output", split, "--eval-interval", "6",
            "--eval-batches", "2", "--save-interval", "3"]);
        double[] losses = TrainerRun.MetricsColumn(straight, "loss");
        Assert.AreEqual(6, losses.Length);
        CollectionAssert.AreEqual(losses, TrainerRun.MetricsColumn(split, "loss"), "straight against 3 steps + resume + 3 steps");

        string without = Path.Combine(root, "plain"), keepAll = Path.Combine(root, "never");
        TrainerRun.Succeed(Train(plain, without, 6));
        TrainerRun.Succeed(Train(never, keepAll, 6));
        double[] plainLosses = TrainerRun.MetricsColumn(without, "loss");
        CollectionAssert.AreEqual(plainLosses, TrainerRun.MetricsColumn(keepAll, "loss"), "theta 1 keeps every block, unscaled");
        // DeepSpeed hands the forward θ as updated after the step before: 1 in the first two steps.
        CollectionAssert.AreEqual(plainLosses.Take(2).ToArray(), losses.Take(2).ToArray(), "θ is 1 in the first two steps: nothing skipped, nothing scaled");
        Assert.IsTrue(losses.Skip(2).Zip(plainLosses.Skip(2)).All(p => p.First != p.Second), "from the third step blocks are skipped or scaled");

        // The run's validation at step 6 used every block: eval of the checkpoint (which never drops) agrees.
        double trained = TrainerRun.MetricsColumn(straight, "val_loss").Last(v => !double.IsNaN(v));
        string eval = TrainerRun.Succeed("eval", "--config", dropping, "--resume", straight, "--data", data, "--eval-batches", "2");
        StringAssert.Contains(eval, "validation loss " + trained.ToString("F4", CultureInfo.InvariantCulture));
    }

    [TestMethod]
    public void TheBingBertConfigFromDeepSpeedExamplesIsTaken()
    {
        // DeepSpeedExamples' bing_bert PLD config (theta 0.5, gamma 0.001): read and shown as the effective values.
        string config = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(TrainerRun.SharedData("x"))!, "..", "ds_configs", "03_dse_bingbert_progressive_layer_drop.json"));
        string output = TrainerRun.Succeed("train", "--config", config, "--print-config");
        StringAssert.Contains(output, "$.progressive_layer_drop.enabled = true");
        StringAssert.Contains(output, "$.progressive_layer_drop.theta = 0.5");
        StringAssert.Contains(output, "$.progressive_layer_drop.gamma = 0.001");

        // plan: what the schedule saves on TinyGpt once settled, from the generated FLOPs per op.
        StringAssert.Contains(TrainerRun.Succeed("plan", "--config", config), "progressive layer drop: θ is within 0.01 of 0.5 after about 3,914 steps; " +
            "then the [LayerDrop] layers run 68.8% of their passes, and as they are 99.0% of a step's FLOPs, a step does about 69.1% of the full step's");
    }

    [TestMethod]
    public void TheFlopsProfilerCountsTheBlocksTheProfiledStepRan()
    {
        // Step 4 (θ = 0.5 + 0.5·e^(−3) ≈ 0.52 with gamma 1, one step behind): fewer FLOPs than the plain run's step 4.
        var root = TrainerRun.TempDirectory();
        const string Profiler = """ "flops_profiler": { "enabled": true, "profile_step": 4 }, """;
        string plain = TrainerRun.WriteSmallConfig(root, "plain.json", Profiler),
            dropping = TrainerRun.WriteSmallConfig(root, "pld.json", Profiler + """ "progressive_layer_drop": { "enabled": true, "theta": 0.5, "gamma": 1.0 }, """);
        double Forward(string config, string name)
        {
            string output = TrainerRun.Succeed("train", "--config", config, "--steps", "5", "--eval-interval", "0", "--output", Path.Combine(root, name));
            var line = System.Text.RegularExpressions.Regex.Match(output, @"fwd FLOPs per micro-batch:\s+([\d.]+) MFLOPs");
            Assert.IsTrue(line.Success, output);
            return double.Parse(line.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        double all = Forward(plain, "plain"), ran = Forward(dropping, "pld");
        Assert.IsTrue(ran < all, $"the profiled step ran {ran} of {all} MFLOPs");
        Assert.IsTrue(ran > 0.25 * all, $"the embedding and the head always run: {ran} of {all} MFLOPs");
    }

    [TestMethod]
    public void AModelWithoutLayerDropLayersStopsBeforeTraining()
    {
        var root = TrainerRun.TempDirectory();
        string config = TrainerRun.WriteSmallConfig(root, "pld.json", """ "progressive_layer_drop": { "enabled": true, "theta": 0.5 }, """);
        var (code, output, errors) = TrainerRun.Run<SmallGpt>(["train", "--config", config, "--steps", "1", "--output", Path.Combine(root, "run")]);
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(errors + output, "pld.json: $.progressive_layer_drop.enabled is true, but SmallGpt has no layer it may skip: mark its repeated blocks [LayerDrop]");
        Assert.IsFalse(Directory.Exists(Path.Combine(root, "run")), "nothing was trained or written");
    }
}
