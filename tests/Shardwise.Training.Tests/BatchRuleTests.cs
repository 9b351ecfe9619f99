using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

[TestClass]
public sealed class BatchRuleTests
{
    private static DeepSpeedConfig Config(string batchKeys) =>
        DeepSpeedConfig.Parse("{" + batchKeys + "}", "batch.json").Config;

    [TestMethod]
    public void AllThreeGiven_Consistent()
    {
        var batch = Config("\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 4").Resolve(2);
        Assert.AreEqual(new BatchSizes(32, 4, 4, 2), batch);
    }

    [TestMethod]
    public void InfersGradientAccumulation()
    {
        Assert.AreEqual(new BatchSizes(32, 4, 4, 2), Config("\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4").Resolve(2));
    }

    [TestMethod]
    public void InfersMicroBatch()
    {
        Assert.AreEqual(new BatchSizes(32, 4, 2, 4), Config("\"train_batch_size\": 32, \"gradient_accumulation_steps\": 2").Resolve(4));
    }

    [TestMethod]
    public void InfersTrainBatch()
    {
        Assert.AreEqual(new BatchSizes(24, 4, 3, 2), Config("\"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 3").Resolve(2));
    }

    [TestMethod]
    public void OnlyTrainBatch_GasIsOne()
    {
        Assert.AreEqual(new BatchSizes(32, 8, 1, 4), Config("\"train_batch_size\": 32").Resolve(4));
    }

    [TestMethod]
    public void OnlyMicroBatch_GasIsOne()
    {
        Assert.AreEqual(new BatchSizes(18, 6, 1, 3), Config("\"train_micro_batch_size_per_gpu\": 6").Resolve(3));
    }

    [TestMethod]
    public void AutoTrainBatch_IsInferred()
    {
        var config = Config("\"train_batch_size\": \"auto\", \"train_micro_batch_size_per_gpu\": 2, \"gradient_accumulation_steps\": 5");
        Assert.AreEqual(new BatchSizes(80, 2, 5, 8), config.Resolve(8));
    }

    [TestMethod]
    public void Neither_Fails()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => Config("\"gradient_accumulation_steps\": 2").Resolve(1));
        StringAssert.Contains(error.Message, "train_batch_size");
        StringAssert.Contains(error.Message, "train_micro_batch_size_per_gpu");
        StringAssert.Contains(error.Message, "batch.json");
    }

    [TestMethod]
    public void Mismatch_ShowsTheNumbers()
    {
        var config = Config("\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 2");
        var error = Assert.ThrowsExactly<ConfigException>(() => config.Resolve(2));
        StringAssert.Contains(
            error.Message,
            "train_batch_size (32) != train_micro_batch_size_per_gpu (4) × gradient_accumulation_steps (2) × data-parallel size (2) = 16");
    }

    [TestMethod]
    public void IntegerDivisionRemainder_FailsAndExplainsTheInference()
    {
        // gas = 30 // 4 // 2 = 3, and 4 × 3 × 2 = 24 != 30.
        var error = Assert.ThrowsExactly<ConfigException>(() => Config("\"train_batch_size\": 30, \"train_micro_batch_size_per_gpu\": 4").Resolve(2));
        StringAssert.Contains(error.Message, "train_batch_size (30) != train_micro_batch_size_per_gpu (4) × gradient_accumulation_steps (3) × data-parallel size (2) = 24");
        StringAssert.Contains(error.Message, "inferred as train_batch_size (30) // train_micro_batch_size_per_gpu (4) // data-parallel size (2) = 3");
    }

    [TestMethod]
    public void InferredZero_Fails()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => Config("\"train_batch_size\": 3, \"train_micro_batch_size_per_gpu\": 4").Resolve(1));
        StringAssert.Contains(error.Message, "gradient_accumulation_steps (0) must be > 0");
    }

    [TestMethod]
    public void OnlyTrainBatch_NotDivisible_Fails()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => Config("\"train_batch_size\": 10").Resolve(4));
        StringAssert.Contains(error.Message, "train_batch_size (10) != train_micro_batch_size_per_gpu (2) × gradient_accumulation_steps (1) × data-parallel size (4) = 8");
    }

    [TestMethod]
    public void InferredMicroBatch_Remainder_Fails()
    {
        // micro = 32 // 3 // 2 = 5, and 5 × 2 × 3 = 30.
        var error = Assert.ThrowsExactly<ConfigException>(() => Config("\"train_batch_size\": 32, \"gradient_accumulation_steps\": 2").Resolve(3));
        StringAssert.Contains(error.Message, "= 30");
        StringAssert.Contains(error.Message, "train_micro_batch_size_per_gpu was inferred");
    }

    [TestMethod]
    public void NonPositiveValue_IsAParseError()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => Config("\"train_batch_size\": 0"));
        StringAssert.Contains(error.Message, "$.train_batch_size");
    }
}
