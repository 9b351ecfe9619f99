using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

/// <summary>The "flops_profiler" section: DeepSpeed's defaults, the corpus's three files, errors and warnings that name the key.</summary>
[TestClass]
public sealed class FlopsProfilerConfigTests
{
    private static ConfigLoadResult Parse(string section) => DeepSpeedConfig.Parse($$"""{ "train_batch_size": 8, "flops_profiler": {{section}} }""");

    [TestMethod]
    public void AbsentOrEmptyIsDeepSpeedsDefault()
    {
        var absent = DeepSpeedConfig.Parse("""{ "train_batch_size": 8 }""").Config.FlopsProfiler;
        Assert.AreEqual(FlopsProfilerConfig.Disabled, absent);
        var empty = Parse("{}").Config.FlopsProfiler;
        Assert.AreEqual((false, 1, -1, 1, true, (string?)null, 0.0), (empty.Enabled, empty.ProfileStep, empty.ModuleDepth, empty.TopModules, empty.Detailed, empty.OutputFile, empty.RecomputeForwardFactor));
    }

    [TestMethod]
    public void TheCorpusFilesLoadWithoutTheUnsupportedWarning()
    {
        var eighteen = DeepSpeedConfig.Load(TestPaths.Config("18_mds_gpt_flops_comms_wandb.json"));
        Assert.AreEqual((true, 1, -1, 3, true, (string?)null), (eighteen.Config.FlopsProfiler.Enabled, eighteen.Config.FlopsProfiler.ProfileStep,
            eighteen.Config.FlopsProfiler.ModuleDepth, eighteen.Config.FlopsProfiler.TopModules, eighteen.Config.FlopsProfiler.Detailed, eighteen.Config.FlopsProfiler.OutputFile));
        Assert.IsFalse(eighteen.Warnings.Any(w => w.Contains("flops_profiler", System.StringComparison.Ordinal)), string.Join("\n", eighteen.Warnings));

        // 17 asks for step -1, which DeepSpeed never reaches either: said, not silently skipped.
        var seventeen = DeepSpeedConfig.Load(TestPaths.Config("17_mds_zero2_bfloat16_flops_profiler.json"));
        Assert.AreEqual(-1, seventeen.Config.FlopsProfiler.ProfileStep);
        CollectionAssert.Contains(seventeen.Warnings.ToList(), "$.flops_profiler.profile_step: -1 is never reached (steps count from 0, as in DeepSpeed): no profile is printed");
    }

    [TestMethod]
    public void BadValuesNameTheirKey()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => Parse("""{ "enabled": true, "top_modules": 0 }""")).Message, "$.flops_profiler.top_modules");
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => Parse("""{ "enabled": "yes" }""")).Message, "$.flops_profiler.enabled");
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => Parse("""{ "recompute_fwd_factor": 1.5 }""")).Message,
            "$.flops_profiler.recompute_fwd_factor: 1.5 is out of range: a fraction of the forward, 0 to 1");
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => Parse("""{ "output_file": 3 }""")).Message, "$.flops_profiler.output_file");
        Assert.IsTrue(Parse("""{ "enabled": true, "profile_stp": 2 }""").Warnings.Any(w => w.StartsWith("$.flops_profiler.profile_stp", System.StringComparison.Ordinal)));
    }
}
