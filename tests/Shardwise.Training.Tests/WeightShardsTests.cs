using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Plans;
using Shardwise.Training.Cli;

namespace Shardwise.Training.Tests;

[TestClass]
public sealed class WeightShardsTests
{
    private static readonly ParameterLayout Layout = new(
    [
        new ParameterSlot("embed", [100, 10], 0, 1000, ParameterInit.Normal),
        new ParameterSlot("a.weight", [10, 30], 1008, 300, ParameterInit.Normal),
        new ParameterSlot("a.bias", [30], 1312, 30, ParameterInit.Zeros),
        new ParameterSlot("b.weight", [30, 10], 1344, 300, ParameterInit.Normal),
        new ParameterSlot("head", [2000], 1648, 2000, ParameterInit.Normal),
    ], 3648);

    private static string Print(System.Collections.Generic.IReadOnlyList<WeightShard> shards) =>
        string.Join("\n", shards.Select(s => $"{s.FileName}: {string.Join(", ", s.Parameters.Select(p => p.Name))} ({s.Bytes} bytes)"));

    [TestMethod]
    public void ParametersFillFilesInLayoutOrderAndALargeOneGetsItsOwn()
    {
        // bf16: embed 2000 bytes, a.weight 600, a.bias 60, b.weight 600, head 4000; limit 2700.
        Assert.AreEqual("""
            model-00001-of-00003.safetensors: embed, a.weight, a.bias (2660 bytes)
            model-00002-of-00003.safetensors: b.weight (600 bytes)
            model-00003-of-00003.safetensors: head (4000 bytes)
            """.ReplaceLineEndings("\n"), Print(WeightShards.Plan(Layout, 2, 2700, "model.safetensors")));

        Assert.AreEqual("model.safetensors: embed, a.weight, a.bias, b.weight, head (14520 bytes)",
            Print(WeightShards.Plan(Layout, 4, long.MaxValue, "model.safetensors")), "one file keeps the output's name");
        Assert.AreEqual(5, WeightShards.Plan(Layout, 4, 1, "w.safetensors").Count, "a limit below every parameter: one file each");
        Assert.AreEqual("pytorch_model.safetensors.index.json", WeightShards.IndexFileName("/out/pytorch_model.safetensors"));
    }

    [TestMethod]
    public void SizesAreReadAsHuggingFaceWritesThem()
    {
        Assert.AreEqual(5_000_000_000L, WeightShards.ParseSize("5GB", "max-shard-size"));
        Assert.AreEqual(500L << 20, WeightShards.ParseSize("500MiB", "max-shard-size"));
        Assert.AreEqual(1_500_000L, WeightShards.ParseSize("1.5mb", "max-shard-size"));
        Assert.AreEqual(4096L, WeightShards.ParseSize("4096", "max-shard-size"));
        Assert.AreEqual(2L << 30, WeightShards.ParseSize("2 GiB", "max-shard-size"));
        foreach (var bad in new[] { "5XB", "-1GB", "0", "GB", "five" })
            StringAssert.Contains(Assert.ThrowsExactly<CliException>(() => WeightShards.ParseSize(bad, "max-shard-size")).Message, $"--max-shard-size '{bad}' is not a size");
    }
}
