using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;

namespace Shardwise.Trainer.Tests;

/// <summary>compression_training through the trainer: a resumed run continues bit for bit, and bad groups stop with their paths.</summary>
[TestClass]
public sealed class CompressionTrainerTests
{
    /// <summary>fp16 MoQ from 8 to 4 bits with mixing, sparse pruning from update 4 and row pruning from update 6.</summary>
    private const string Compression = """
        "fp16": { "enabled": true },
        "compression_training": {
          "weight_quantization": {
            "shared_parameters": { "enabled": true, "schedule_offset": 1, "quantize_groups": 2, "quantize_verbose": true,
                                   "quantization_type": "asymmetric", "rounding": "stochastic",
                                   "fp16_mixed_quantize": { "enabled": true, "quantize_change_ratio": 0.1 } },
            "different_groups": { "wq1": { "params": { "start_bits": 8, "target_bits": 4, "quantization_period": 2 }, "modules": ["expand", "contract"] } } },
          "sparse_pruning": { "shared_parameters": { "enabled": true, "schedule_offset": 4, "method": "l1" },
            "different_groups": { "sp1": { "params": { "dense_ratio": 0.5 }, "modules": ["blocks\\.[01]\\.contract"] } } },
          "row_pruning": { "shared_parameters": { "enabled": true, "schedule_offset": 6, "method": "l1" },
            "different_groups": { "rp1": { "params": { "dense_ratio": 0.75 }, "modules": ["expand"] } } } },
        """;

    [TestMethod]
    public void ResumingKeepsMasksAndScheduleBitForBit()
    {
        var root = TrainerRun.TempDirectory();
        var config = TrainerRun.WriteSmallConfig(root, "compression.json", Compression);
        string straight = Path.Combine(root, "straight"), split = Path.Combine(root, "split");

        var output = TrainerRun.Succeed("train", "--config", config, "--steps", "12", "--output", straight, "--eval-interval", "0");
        StringAssert.Contains(output, "compression: weight quantization wq1: 8→4 bits, period 2 doubling, asymmetric, 2 group(s) per tensor, from update 2; 8 module(s)");
        StringAssert.Contains(output, "compression: weight quantization wq1 at 5 bits from update 9 on");
        StringAssert.Contains(output, "row pruning mask of blocks.3.expand taken at update 6: 384 of 512 rows kept");

        // The split run's checkpoint at 5 holds the sparse masks (taken at 4); the row masks are taken after the resume.
        TrainerRun.Succeed("train", "--config", config, "--steps", "5", "--output", split, "--eval-interval", "0");
        using (var masks = SafeTensorsReader.Open(Path.Combine(split, "step-000005", "compression_masks.safetensors")))
            CollectionAssert.AreEqual(new[] { "blocks.0.contract.sparse_mask", "blocks.1.contract.sparse_mask" }, masks.Tensors.Select(t => t.Name).ToArray());
        var resumed = TrainerRun.Succeed("train", "--config", config, "--steps", "12", "--resume", split, "--eval-interval", "0");
        Assert.IsFalse(resumed.Contains("sparse pruning mask"), "the sparse masks come from the checkpoint, not from the restored weights");
        StringAssert.Contains(resumed, "row pruning mask of blocks.0.expand taken at update 6");

        foreach (var file in new[] { "model.safetensors", "optimizer.safetensors", "compression_masks.safetensors" })
        {
            CollectionAssert.AreEqual(TrainerRun.TensorHashes(Path.Combine(straight, "step-000012", file)), TrainerRun.TensorHashes(Path.Combine(split, "step-000012", file)),
                $"{file} differs between the straight and the resumed run");
        }
        var losses = TrainerRun.MetricsColumn(straight, "loss");
        Assert.IsTrue(losses[^1] < losses[0] - 1.0, $"the compressed model trains: loss {losses[0]:F3} → {losses[^1]:F3}");
    }

    [TestMethod]
    public void BadGroupsAndUnsupportedRunsStopWithTheirPaths()
    {
        var root = TrainerRun.TempDirectory();
        var typo = TrainerRun.WriteSmallConfig(root, "typo.json", Compression.Replace("blocks\\\\.[01]\\\\.contract", "contrat"));
        var (code, _, errors) = TrainerRun.Run("train", "--config", typo, "--steps", "1", "--output", Path.Combine(root, "typo"));
        Assert.AreEqual(2, code, errors);
        StringAssert.Contains(errors, "typo.json");
        StringAssert.Contains(errors, "$.compression_training.sparse_pruning.different_groups.sp1.modules[0]: \"contrat\" matches none of the model's compressible modules (tokens, positions, blocks.N.attention.qkv (×4)");

        var stage3 = TrainerRun.WriteSmallConfig(root, "stage3.json", Compression + "\"zero_optimization\": { \"stage\": 3 },");
        (code, _, errors) = TrainerRun.Run("plan", "--config", stage3);
        Assert.AreEqual(2, code, errors);
        StringAssert.Contains(errors, "$.zero_optimization.stage: 3 partitions the working weights");

        var plan = TrainerRun.Succeed("plan", "--config", TrainerRun.WriteSmallConfig(root, "ok.json", Compression));
        StringAssert.Contains(plan, "compression: row pruning (l1) rp1: keeps 0.75 of each weight's rows from update 6; 4 module(s)");

        // bench times the compressed steps, then alternates them with an uncompressed engine's.
        var bench = TrainerRun.Succeed("bench", "--config", TrainerRun.WriteSmallConfig(root, "bench.json", Compression), "--steps", "5", "--warmup", "1");
        StringAssert.Matches(bench, new System.Text.RegularExpressions.Regex(@"compression: [\d.]+ ms/step against [\d.]+ ms/step without compression_training, in 5 alternating rounds of 1 steps"));
    }

    /// <summary>
    /// consolidate --compressed writes what the run's next forward uses: at 12 updates the MoQ schedule is at 5 bits,
    /// so each of a quantized tensor's two groups holds at most 32 values; pruned weights, rows and biases are zero;
    /// what no group covers is the masters, as the plain export writes them.
    /// </summary>
    [TestMethod]
    public void ConsolidateCompressedWritesTheWeightsTheForwardUses()
    {
        var root = TrainerRun.TempDirectory();
        var config = TrainerRun.WriteSmallConfig(root, "compression.json", Compression.Replace("\"enabled\": true, \"quantize_change_ratio\"", "\"enabled\": false, \"quantize_change_ratio\""));
        string run = Path.Combine(root, "run");
        TrainerRun.Succeed("train", "--config", config, "--steps", "12", "--output", run, "--eval-interval", "0");
        string plain = Path.Combine(root, "plain.safetensors"), compressed = Path.Combine(root, "compressed.safetensors");
        TrainerRun.Succeed("consolidate", "--resume", run, "--output", plain);
        var output = TrainerRun.Succeed("consolidate", "--resume", run, "--output", compressed, "--compressed", config);
        StringAssert.Contains(output, "compressed as after 12 applied updates: wq1 at 5 bits");

        using var masters = SafeTensorsReader.Open(plain);
        using var weights = SafeTensorsReader.Open(compressed);
        float[] Read(SafeTensorsReader file, string name)
        {
            var values = new float[file.GetInfo(name).ElementCount];
            file.Read(name, values);
            return values;
        }
        for (int block = 0; block < 4; block++)
        {
            foreach (var layer in new[] { "expand", "contract" })
            {
                var values = Read(weights, $"blocks.{block}.{layer}.weight");
                for (int group = 0; group < 2; group++)
                {
                    int levels = values.Skip(group * values.Length / 2).Take(values.Length / 2).Where(v => v != 0).Distinct().Count();
                    Assert.IsTrue(levels is > 8 and <= 32, $"blocks.{block}.{layer} group {group}: {levels} values at 5 bits");
                }
                int zeros = values.Count(v => v == 0);
                int pruned = layer == "expand" ? 128 * 128 : block < 2 ? 32768 : 0;
                // Zero is one of the grid's levels too: the smallest weights quantize to it.
                Assert.IsTrue(zeros >= pruned && zeros < pruned + (values.Length - pruned) / 3, $"blocks.{block}.{layer}: {zeros} zeros, {pruned} pruned");
            }
            Assert.AreEqual(128, Read(weights, $"blocks.{block}.expand.bias").Count(v => v == 0), "a pruned row's bias is zero");
            CollectionAssert.AreEqual(Read(masters, $"blocks.{block}.attention.qkv.weight"), Read(weights, $"blocks.{block}.attention.qkv.weight"), "not compressed");
        }
        Assert.IsTrue(Read(masters, "blocks.0.expand.weight").Distinct().Count() > 60000, "the plain export holds the unquantized masters");

        // A run trained without compression, compressed after the fact: its masks are taken from its weights.
        string uncompressed = Path.Combine(root, "uncompressed");
        TrainerRun.Succeed("train", "--steps", "7", "--output", uncompressed, "--eval-interval", "0");
        string after = Path.Combine(root, "after.safetensors");
        StringAssert.Contains(TrainerRun.Succeed("consolidate", "--resume", uncompressed, "--output", after, "--compressed", config), "post-training pruning");
        using var afterTheFact = SafeTensorsReader.Open(after);
        Assert.AreEqual(128, Read(afterTheFact, "blocks.3.expand.bias").Count(v => v == 0), "a quarter of the rows pruned, biases too");
        Assert.IsTrue(Read(afterTheFact, "blocks.0.contract.weight").Count(v => v == 0) >= 32768, "half of the contract weights pruned");
    }
}
