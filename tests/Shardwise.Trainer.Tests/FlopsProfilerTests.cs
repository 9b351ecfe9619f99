using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Examples;
using Shardwise.Training.Config;
using Shardwise.Training.Progress;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// DeepSpeed's flops_profiler on a generated program: the generator's per-op FLOPs agree with its own plan report and
/// with the Linear formula, the module tree sums them and the parameters by layer path, the report sets a measured
/// step against them, and the trainer prints it at profile_step (and writes output_file).
/// </summary>
[TestClass]
public sealed class FlopsProfilerTests
{
    [TestMethod]
    public void TheOperationCostsAreThePlansAndTheLinearFormulas()
    {
        var costs = TinyGpt.OperationCosts;
        long total = costs.Sum(c => c.ForwardFlopsPerSample + c.BackwardFlopsPerSample);
        var reported = Regex.Match(TinyGpt.PlanReport, @"([\d,]+) FLOPs per sample \(forward \+ backward\)");
        Assert.IsTrue(reported.Success, "the plan report states the total");
        Assert.AreEqual(long.Parse(reported.Groups[1].Value.Replace(",", "", StringComparison.Ordinal), System.Globalization.CultureInfo.InvariantCulture), total);

        // blocks.2.expand: Linear 128 → 512 over 64 positions, 2·T·in·out plus the bias; backward twice the products.
        var expand = costs.Single(c => c.Layer == "blocks.2.expand");
        Assert.AreEqual(("Linear", 2L * 64 * 128 * 512 + 64 * 512, 2L * (2L * 64 * 128 * 512 + 64 * 512)), (expand.Operation, expand.ForwardFlopsPerSample, expand.BackwardFlopsPerSample));
        // 47 ops, and random-LTD's index load, gather and scatter around each of the 4 [TokenDrop] blocks, with no FLOPs.
        Assert.AreEqual(47 + (3 * 4), costs.Count, "one row per forward op");
        Assert.IsTrue(costs.Where(c => c.Operation.StartsWith("Token", StringComparison.Ordinal)).All(c => c.ForwardFlopsPerSample == 0 && c.BackwardFlopsPerSample == 0));
    }

    [TestMethod]
    public void ModulesSumTheirOpsAndParametersByLayerPath()
    {
        var modules = ModuleCosts.Of(TinyGpt.OperationCosts, TinyGpt.ParameterLayout);
        var root = modules[0];
        Assert.AreEqual(("", 0, TinyGpt.ParameterLayout.ParameterCount), (root.Path, root.Depth, root.Parameters));
        Assert.AreEqual(TinyGpt.OperationCosts.Sum(c => c.ForwardFlopsPerSample), root.ForwardFlopsPerSample);
        CollectionAssert.AreEqual(new[] { "tokens", "positions", "blocks", "finalNorm" }, modules.Where(m => m.Depth == 1).Select(m => m.Path).ToArray(), "first-use order");

        foreach (var module in modules.Where(m => m.Depth > 0))
        {
            long parameters = TinyGpt.ParameterLayout.Slots.Where(s => s.Name.StartsWith(module.Path + ".", StringComparison.Ordinal)).Sum(s => s.Length);
            long forward = TinyGpt.OperationCosts.Where(c => c.Layer == module.Path || c.Layer.StartsWith(module.Path + ".", StringComparison.Ordinal)).Sum(c => c.ForwardFlopsPerSample);
            Assert.AreEqual((parameters, forward), (module.Parameters, module.ForwardFlopsPerSample), module.Path);
            var children = modules.Where(m => m.Depth == module.Depth + 1 && m.Path.StartsWith(module.Path + ".", StringComparison.Ordinal)).ToList();
            if (children.Count > 0 && !TinyGpt.OperationCosts.Any(c => c.Layer == module.Path))
                Assert.AreEqual(module.ForwardFlopsPerSample, children.Sum(c => c.ForwardFlopsPerSample), $"{module.Path}: its children's sum");
        }
        // Depth-first: each block's sub-modules follow it, before the next block.
        var paths = modules.Select(m => m.Path).ToList();
        Assert.IsTrue(paths.IndexOf("blocks.0.expand") < paths.IndexOf("blocks.1"), string.Join(", ", paths));
    }

    [TestMethod]
    public void TheReportSetsTheMeasuredStepAgainstTheStaticFlops()
    {
        var config = FlopsProfilerConfig.Disabled with { Enabled = true, ModuleDepth = 2, TopModules = 2 };
        var batch = new BatchSizes(TrainBatchSize: 16, MicroBatchPerGpu: 4, GradientAccumulationSteps: 2, DataParallelSize: 2);
        // 20 ms of forward and 40 of backward over the step's two micro-batches, 5 ms of optimizer, 80 ms in all.
        string report = FlopsProfileReport.Describe("TinyGpt", TinyGpt.OperationCosts, TinyGpt.ParameterLayout, batch, 2, config, new ProfiledStep(3, 20, 40, 5, 80));
        long forward = 4 * TinyGpt.OperationCosts.Sum(c => c.ForwardFlopsPerSample), backward = 4 * TinyGpt.OperationCosts.Sum(c => c.BackwardFlopsPerSample);

        StringAssert.Contains(report, "profile summary at step 3:");
        StringAssert.Contains(report, Line("params of the model:", "809.86 K"));
        StringAssert.Contains(report, Line("fwd FLOPs per micro-batch:", $"{forward / 1e6:0.00} MFLOPs"));
        StringAssert.Contains(report, Line("fwd latency (per micro-batch):", "10.00 ms"));
        StringAssert.Contains(report, Line("fwd FLOPS per GPU = fwd FLOPs / fwd latency:", $"{forward / 0.010 / 1e9:0.00} GFLOPS"));
        StringAssert.Contains(report, Line("bwd FLOPS per GPU = bwd FLOPs / bwd latency:", $"{backward / 0.020 / 1e9:0.00} GFLOPS"));
        StringAssert.Contains(report, Line("FLOPS per GPU over the whole iteration:", $"{2 * (forward + backward) / 0.080 / 1e9:0.00} GFLOPS"));
        StringAssert.Contains(report, Line("samples/second:", "200.00"));
        StringAssert.Contains(report, "    params      - {blocks: 793.09 K, tokens: 8.32 K}");
        StringAssert.Contains(report, "\n    blocks.3: 198.27 K (24.48%) params,");
        Assert.IsFalse(report.Contains("blocks.0.expand", StringComparison.Ordinal), "module_depth 2 stops at the blocks");
        Assert.IsFalse(FlopsProfileReport.Describe("TinyGpt", TinyGpt.OperationCosts, TinyGpt.ParameterLayout, batch, 2, config with { Detailed = false }, new ProfiledStep(3, 20, 40, 5, 80))
            .Contains("detailed profile", StringComparison.Ordinal));
    }

    private static string Line(string label, string value) => label.PadRight(52) + value + "\n";

    [TestMethod]
    public void TheTrainerPrintsTheProfileAtItsStepAndWritesTheFile()
    {
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "ds.json"), file = Path.Combine(root, "profile.txt");
        File.WriteAllText(config, $$"""
            { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "steps_per_print": 10,
              "flops_profiler": { "enabled": true, "profile_step": 1, "module_depth": -1, "output_file": "{{file}}" } }
            """);
        string output = TrainerRun.Succeed("train", "--config", config, "--steps", "3", "--eval-interval", "0", "--output", Path.Combine(root, "run"));
        Assert.AreEqual(1, Regex.Matches(output, "profile summary at step 1:").Count, output);
        StringAssert.Contains(output, "      blocks.0.attention.qkv: ", "every depth");
        StringAssert.Contains(File.ReadAllText(file), "profile summary at step 1:");
        var latency = Regex.Match(output, @"fwd latency \(per micro-batch\):\s+([\d.]+) ms");
        Assert.IsTrue(latency.Success && double.Parse(latency.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, "a measured forward");

        File.WriteAllText(config, File.ReadAllText(config).Replace("\"profile_step\": 1", "\"profile_step\": -1", StringComparison.Ordinal));
        var (code, quiet, errors) = TrainerRun.Run("train", "--config", config, "--steps", "2", "--eval-interval", "0", "--output", Path.Combine(root, "run2"));
        Assert.AreEqual(0, code, errors);
        Assert.IsFalse(quiet.Contains("profile summary", StringComparison.Ordinal));
        StringAssert.Contains(quiet + errors, "$.flops_profiler.profile_step: -1 is never reached");
        Directory.Delete(root, recursive: true);
    }
}
