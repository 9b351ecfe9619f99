using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

/// <summary>The "comms_logger" section: DeepSpeed's defaults, the corpus's files, and what logs nothing said aloud.</summary>
[TestClass]
public sealed class CommsLoggerConfigTests
{
    private static ConfigLoadResult Parse(string section) => DeepSpeedConfig.Parse($$"""{ "train_batch_size": 8, "comms_logger": {{section}} }""");

    [TestMethod]
    public void DefaultsAreDeepSpeeds()
    {
        var absent = DeepSpeedConfig.Parse("""{ "train_batch_size": 8 }""").Config.CommsLogger;
        Assert.AreEqual((false, false, true, 0), (absent.Enabled, absent.Verbose, absent.ProfileAll, absent.ProfileOperations.Count));
        var on = Parse("""{ "enabled": true }""");
        Assert.AreEqual((true, false, true, 0), (on.Config.CommsLogger.Enabled, on.Config.CommsLogger.Verbose, on.Config.CommsLogger.ProfileAll, on.Config.CommsLogger.ProfileOperations.Count));
        Assert.IsNull(on.Config.CommsLogger.Only, "prof_all: every operation");
        Assert.AreEqual(0, on.Warnings.Count, string.Join("\n", on.Warnings));
    }

    [TestMethod]
    public void ProfOpsChoosesOperationsAndNamesTheOnesShardwiseNeverCalls()
    {
        var result = Parse("""{ "enabled": true, "prof_all": false, "prof_ops": ["all_reduce", "all_to_all_single"] }""");
        CollectionAssert.AreEqual(new[] { "all_reduce", "all_to_all_single" }, result.Config.CommsLogger.Only!.ToArray());
        Assert.IsTrue(result.Warnings.Any(w => w.StartsWith("$.comms_logger.prof_ops: \"all_to_all_single\" is not an operation Shardwise calls", System.StringComparison.Ordinal)),
            string.Join("\n", result.Warnings));
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => Parse("""{ "prof_ops": "all_reduce" }""")).Message, "$.comms_logger.prof_ops: expected a list of operation names");
    }

    [TestMethod]
    public void TheCorpusFilesThatLogNothingAreTold()
    {
        foreach (var name in new[] { "18_mds_gpt_flops_comms_wandb.json", "35_catid_cifar10_comms_logger_onecycle.json" })
        {
            var result = DeepSpeedConfig.Load(TestPaths.Config(name));
            Assert.IsTrue(result.Config.CommsLogger.Enabled, name);
            CollectionAssert.Contains(result.Warnings.ToList(),
                "$.comms_logger.prof_all: false with no prof_ops: nothing is logged (DeepSpeed then logs only calls a model marks with prof=True, and Shardwise's generated code marks none); set prof_all to true",
                name);
            Assert.IsFalse(result.Warnings.Any(w => w.Contains("known DeepSpeed feature not supported", System.StringComparison.Ordinal) && w.Contains("comms_logger", System.StringComparison.Ordinal)), name);
        }
    }
}
