using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Elasticity;

namespace Shardwise.Training.Tests;

/// <summary>DeepSpeed's elastic batch, against the values DeepSpeed's own tests assert (tests/unit/elasticity), and its config rules.</summary>
[TestClass]
public sealed class ElasticityTests
{
    private const string TenK = """
        "elasticity": { "enabled": true, "max_train_batch_size": 10000, "micro_batch_sizes": [8, 12, 16, 17],
                        "min_gpus": 32, "max_gpus": 1500, "min_time": 20, "version": 0.1 }
        """;

    private static DeepSpeedConfig Parse(string sections) => DeepSpeedConfig.Parse("{ " + sections + " }").Config;

    [TestMethod]
    public void TenThousandBatchAsDeepSpeedComputesIt()
    {
        var config = Parse(TenK);
        var choice = ElasticBatch.For(config.Elasticity!, 64);
        Assert.AreEqual(9792, choice.TrainBatchSize);
        Assert.AreEqual(23, choice.ValidDataParallelSizes.Count);
        Assert.AreEqual(17, choice.MicroBatchPerGpu, "9792 / 64 = 153 = 9 × 17");
        foreach (int gpus in choice.ValidDataParallelSizes)
        {
            Assert.AreEqual(0, 9792 % gpus);
            Assert.IsTrue(new[] { 8, 12, 16, 17 }.Any(m => 9792 / gpus % m == 0), $"{gpus} GPUs: some micro-batch divides the per-GPU batch");
        }
        StringAssert.Contains(config.Describe(), "$.elasticity = version 0.1, max_train_batch_size 10000, micro_batch_sizes [8, 12, 16, 17], GPUs 32–1500");
        StringAssert.Contains(config.Describe(64), "$.train_micro_batch_size_per_gpu = 17");
        var batch = config.Resolve(64);
        Assert.AreEqual(new BatchSizes(9792, 17, 9, 64), batch);

        var invalid = Assert.ThrowsExactly<ConfigException>(() => config.Resolve(128));
        StringAssert.Contains(invalid.Message, "$.elasticity: 128 data-parallel ranks cannot train the elastic batch of 9792: the valid counts are 32, 34, 36");
    }

    [TestMethod]
    public void TheLargestMicroBatchThatDividesIsTaken()
    {
        var config = Parse("""
            "elasticity": { "enabled": true, "max_train_batch_size": 32, "micro_batch_sizes": [1, 2, 3, 7], "min_gpus": 1, "max_gpus": 1500, "version": 0.1 }
            """);
        Assert.AreEqual(3, ElasticBatch.For(config.Elasticity!, 7).MicroBatchPerGpu, "DeepSpeed's test_proper_mbsz");
        // A small case by hand: 2·24 = 4·12 = 48 is the only candidate; its valid counts are the divisors 1–24 of 24 and 12.
        var small = Parse("""
            "elasticity": { "enabled": true, "max_train_batch_size": 64, "micro_batch_sizes": [2, 4], "version": 0.1 }
            """);
        var choice = ElasticBatch.For(small.Elasticity!, 3);
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 4, 6, 8, 12, 24 }, choice.ValidDataParallelSizes.ToArray());
        Assert.AreEqual(new BatchSizes(48, 4, 4, 3), small.Resolve(3));
        Assert.AreEqual(new BatchSizes(48, 4, 12, 1), small.Resolve(1));
        Assert.AreEqual(new BatchSizes(48, 2, 1, 24), small.Resolve(24));
    }

    [TestMethod]
    public void VersionTwoCountsNodesOfDataParallelRanks()
    {
        var config = Parse(TenK.Replace("\"version\": 0.1", "\"version\": 0.2, \"model_parallel_size\": 4, \"num_gpus_per_node\": 8"));
        // 16 GPUs in groups of 4: 4 data-parallel ranks, 2 per node; the node-level batch is chosen as version 0.1 does.
        var choice = ElasticBatch.For(config.Elasticity!, 4);
        Assert.AreEqual(0, choice.TrainBatchSize % (choice.MicroBatchPerGpu * 4));
        Assert.IsTrue(choice.ValidDataParallelSizes.All(n => n % 2 == 0), "whole nodes of two ranks");
        Assert.IsTrue(choice.TrainBatchSize <= 10000);

        var errors = Assert.ThrowsExactly<ConfigException>(() => Parse(TenK.Replace("\"version\": 0.1", "\"version\": 0.2, \"model_parallel_size\": 16, \"num_gpus_per_node\": 8")));
        StringAssert.Contains(errors.Message, "$.elasticity.num_gpus_per_node: 8 is not a multiple of model_parallel_size (16)");
        errors = Assert.ThrowsExactly<ConfigException>(() => Parse(TenK.Replace("\"version\": 0.1", "\"version\": 0.1, \"model_parallel_size\": 4")));
        StringAssert.Contains(errors.Message, "$.elasticity.model_parallel_size: 4: elasticity version 0.1 does not support model parallelism");
    }

    [TestMethod]
    public void BadValuesAndBatchKeysBesideItAreErrors()
    {
        var errors = Assert.ThrowsExactly<ConfigException>(() => Parse(TenK.Replace("[8, 12, 16, 17]", "[1, 4, -1, 2]")));
        StringAssert.Contains(errors.Message, "$.elasticity.micro_batch_sizes[2]: expected a positive integer, found the number -1");
        errors = Assert.ThrowsExactly<ConfigException>(() => Parse(TenK.Replace("[8, 12, 16, 17]", "5")));
        StringAssert.Contains(errors.Message, "$.elasticity.micro_batch_sizes: expected a non-empty list of positive integers");
        errors = Assert.ThrowsExactly<ConfigException>(() => Parse("""  "elasticity": { "enabled": true } """));
        StringAssert.Contains(errors.Message, "$.elasticity.max_train_batch_size is required");
        StringAssert.Contains(errors.Message, "$.elasticity.micro_batch_sizes is required");
        errors = Assert.ThrowsExactly<ConfigException>(() => Parse(TenK.Replace("\"version\": 0.1", "\"version\": 0.3")));
        StringAssert.Contains(errors.Message, "$.elasticity.version: the number 0.3: elasticity versions are 0.1 and 0.2");

        errors = Assert.ThrowsExactly<ConfigException>(() => Parse("\"train_batch_size\": 2, " + TenK));
        StringAssert.Contains(errors.Message, "$.train_batch_size: 2 is set beside an enabled elasticity section");
        var overridden = DeepSpeedConfig.Parse("{ \"train_batch_size\": 2, " + TenK.Replace("\"version\": 0.1", "\"version\": 0.1, \"ignore_non_elastic_batch_info\": true") + " }");
        Assert.IsTrue(overridden.Warnings.Any(w => w.Contains("$.train_batch_size")), string.Join("; ", overridden.Warnings));
        Assert.AreEqual(9792, overridden.Config.Resolve(64).TrainBatchSize);

        Assert.IsNull(Parse("\"train_batch_size\": 2, \"elasticity\": { \"enabled\": false, \"max_train_batch_size\": 7 }").Elasticity, "off: not read");
    }
}
