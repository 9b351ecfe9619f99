using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Trainer.Tests;

/// <summary>Bad input gets one clear line naming the file, option or key; nothing crashes.</summary>
[TestClass]
public sealed class CliTests
{
    [TestMethod]
    public void MalformedJsonlStopsWithFileAndLine()
    {
        var root = TrainerRun.TempDirectory();
        var data = Path.Combine(root, "bad.jsonl");
        File.WriteAllLines(data, new[] { "{\"text\": \"first speech\"}", "{\"text\": \"second\"}", "{\"text\": 42}" });

        var (code, _, errors) = TrainerRun.Run("train", "--data", data, "--steps", "5", "--output", Path.Combine(root, "run"));

        Assert.AreEqual(2, code);
        StringAssert.Contains(errors, data + ":3:");
    }

    /// <summary>
    /// tensor_parallel.autotp_size against the build-time plan: TinyGpt has no tensor split, so a degree of 2 stops the
    /// run before anything is allocated, naming the key and what to change; a degree of 1 is the plan and trains.
    /// </summary>
    [TestMethod]
    public void AnAutoTpDegreeTheModelWasNotCompiledForIsRefused()
    {
        var root = TrainerRun.TempDirectory();
        string Config(int degree)
        {
            var path = Path.Combine(root, $"tp{degree}.json");
            File.WriteAllText(path, $$"""{ "train_micro_batch_size_per_gpu": 2, "tensor_parallel": { "autotp_size": {{degree}} } }""");
            return path;
        }

        var (code, output, errors) = TrainerRun.Run("train", "--config", Config(2), "--steps", "1", "--output", Path.Combine(root, "two"));
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(errors, "$.tensor_parallel.autotp_size is 2, but TinyGpt is planned without tensor parallelism");
        StringAssert.Contains(errors, "set [Model(Tensor = 2)]");
        Assert.IsFalse(Directory.Exists(Path.Combine(root, "two")), "nothing was started");
        TrainerRun.Succeed("train", "--config", Config(1), "--steps", "1", "--output", Path.Combine(root, "one"), "--eval-interval", "0");
    }

    /// <summary>pipeline.stages likewise: TinyGpt is not cut into stages, so 2 stops the run naming the key; 1 is the plan.</summary>
    [TestMethod]
    public void APipelineStageCountTheModelWasNotCutIntoIsRefused()
    {
        var root = TrainerRun.TempDirectory();
        string Config(int stages)
        {
            var path = Path.Combine(root, $"pp{stages}.json");
            File.WriteAllText(path, $$"""{ "train_micro_batch_size_per_gpu": 2, "pipeline": { "stages": {{stages}} } }""");
            return path;
        }

        var (code, output, errors) = TrainerRun.Run("train", "--config", Config(2), "--steps", "1", "--output", Path.Combine(root, "two"));
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(errors, "$.pipeline.stages is 2, but TinyGpt is planned without pipeline parallelism");
        StringAssert.Contains(errors, "set [Model(Pipeline = 2)]");
        Assert.IsFalse(Directory.Exists(Path.Combine(root, "two")), "nothing was started");
        TrainerRun.Succeed("train", "--config", Config(1), "--steps", "1", "--output", Path.Combine(root, "one"), "--eval-interval", "0");
    }

    [TestMethod]
    public void UnknownOptionNamesTheValidOnes()
    {
        var (code, _, errors) = TrainerRun.Run("train", "--step", "5");
        Assert.AreEqual(2, code);
        StringAssert.Contains(errors, "unknown option --step");
        StringAssert.Contains(errors, "--steps");
    }

    [TestMethod]
    public void ConfigErrorNamesTheJsonPath()
    {
        var root = TrainerRun.TempDirectory();
        var config = Path.Combine(root, "ds_config.json");
        File.WriteAllText(config, """{ "train_batch_size": 32, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2 }""");

        var (code, _, errors) = TrainerRun.Run("train", "--config", config, "--steps", "5", "--output", Path.Combine(root, "run"));

        Assert.AreEqual(2, code);
        StringAssert.Contains(errors, "train_batch_size (32)");
    }

    [TestMethod]
    public void PrintConfigShowsEffectiveValuesAndTrainsNothing()
    {
        var root = TrainerRun.TempDirectory();
        var output = TrainerRun.Succeed("train", "--print-config", "--output", Path.Combine(root, "run"));
        StringAssert.Contains(output, "train_micro_batch_size_per_gpu = 12");
        StringAssert.Contains(output, "$.optimizer");
        Assert.IsFalse(Directory.Exists(Path.Combine(root, "run", "latest")));
    }

    [TestMethod]
    public void BuiltInTaskTrainsEvaluatesAndPlans()
    {
        var root = TrainerRun.TempDirectory();
        var run = Path.Combine(root, "run");
        var output = TrainerRun.Succeed("train", "--steps", "30", "--eval-interval", "30", "--output", run);
        StringAssert.Contains(output, "addition");
        StringAssert.Contains(output, "acc ");
        Assert.IsTrue(File.Exists(Path.Combine(run, "latest")));

        StringAssert.Contains(TrainerRun.Succeed("eval", "--resume", run), "validation loss");
        var plan = TrainerRun.Succeed("plan");
        StringAssert.Contains(plan, "parameter layout");
        StringAssert.Contains(plan, "memory of rank 0");
        StringAssert.Contains(plan, "not in the GPU total: the CUDA backend's cuBLAS workspace (32.0MiB)");
        StringAssert.Contains(plan, "up to 1.00GiB (CudaOpsOptions.FlashStoredScoresMaxBytes");

        var sharded = TrainerRun.Succeed("plan", "--ranks", "4");
        StringAssert.Contains(sharded, "ZeRO shard map: 809,856 elements in 4 partitions");
        StringAssert.Contains(sharded, "rank 3:");
        StringAssert.Contains(sharded, ": 1,214,784 values across all ranks"); // ZeRO-0's ring all-reduce: 2Ψ(N−1)/N

        var consolidated = Path.Combine(root, "weights.safetensors");
        StringAssert.Contains(TrainerRun.Succeed("consolidate", "--resume", run, "--output", consolidated), "809,856 fp32 parameters");
        CollectionAssert.AreEqual(TrainerRun.Weights(Path.Combine(run, "step-000030", "model.safetensors")), TrainerRun.Weights(consolidated));
    }

    /// <summary>
    /// consolidate as zero_to_fp32 --max_shard_size does it for Hugging Face: bf16 weights cut into files of at most 1 MB
    /// with an index naming each parameter's file, every value the fp32 checkpoint's rounded to bf16; an earlier
    /// checkpoint by --tag in fp16; clear errors for an unknown tag, dtype or size.
    /// </summary>
    [TestMethod]
    public void ConsolidateWritesHalfPrecisionShardsWithAnIndexAndEarlierTags()
    {
        var root = TrainerRun.TempDirectory();
        var run = Path.Combine(root, "run");
        TrainerRun.Succeed("train", "--steps", "4", "--save-interval", "2", "--eval-interval", "0", "--output", run);
        var layout = Shardwise.Examples.TinyGpt.ParameterLayout;

        var export = Directory.CreateDirectory(Path.Combine(root, "export")).FullName;
        var output = TrainerRun.Succeed("consolidate", "--resume", run, "--output", Path.Combine(export, "model.safetensors"), "--dtype", "bf16", "--max-shard-size", "1MB");
        StringAssert.Contains(output, "809,856 bf16 parameters");
        Assert.IsFalse(File.Exists(Path.Combine(export, "model.safetensors")), "sharded: no single file");
        using var index = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(export, "model.safetensors.index.json")));
        var map = index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        CollectionAssert.AreEqual(layout.Slots.Select(s => s.Name).ToArray(), map.Keys.ToArray(), "every parameter, in layout order");
        CollectionAssert.AreEqual(new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" }, map.Values.Distinct().ToArray());
        Assert.AreEqual(809_856L * 2, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());

        var fp32 = TrainerRun.CheckpointWeights(Path.Combine(run, "step-000004"));
        foreach (var slot in layout.Slots)
        {
            using var file = Shardwise.Checkpoints.SafeTensorsReader.Open(Path.Combine(export, map[slot.Name]));
            Assert.IsTrue(file.GetInfo(slot.Name).ByteLength <= 1_000_000 || file.Tensors.Count == 1, "a file over the limit holds one parameter");
            var bits = new ushort[slot.Length];
            file.ReadBFloat16(slot.Name, bits);
            var expected = new ushort[slot.Length];
            Shardwise.Precision.BFloat16Conversion.ToBFloat16(fp32.AsSpan((int)slot.Offset, (int)slot.Length), expected);
            CollectionAssert.AreEqual(expected, bits, slot.Name);
        }
        foreach (var shard in map.Values.Distinct())
            Assert.IsTrue(new FileInfo(Path.Combine(export, shard)).Length <= 1_000_000 + 16_384, $"{shard} exceeds the limit");

        var early = Path.Combine(export, "early.safetensors");
        StringAssert.Contains(TrainerRun.Succeed("consolidate", "--resume", run, "--tag", "step-000002", "--output", early, "--dtype", "fp16"), "fp16 parameters");
        var earlyFp32 = TrainerRun.CheckpointWeights(Path.Combine(run, "step-000002"));
        CollectionAssert.AreNotEqual(earlyFp32, fp32, "the tags hold different steps");
        using (var file = Shardwise.Checkpoints.SafeTensorsReader.Open(early))
        foreach (var slot in layout.Slots)
        {
            var halves = new System.Half[slot.Length];
            file.Read(slot.Name, halves);
            CollectionAssert.AreEqual(earlyFp32.AsSpan((int)slot.Offset, (int)slot.Length).ToArray().Select(v => (System.Half)v).ToArray(), halves, slot.Name);
        }

        var (code, _, errors) = TrainerRun.Run("consolidate", "--resume", run, "--tag", "step-000003", "--output", early);
        Assert.AreEqual(2, code);
        StringAssert.Contains(errors, "no checkpoint with tag 'step-000003'; committed: step-000002, step-000004");
        StringAssert.Contains(TrainerRun.Run("consolidate", "--resume", run, "--output", early, "--dtype", "int8").Errors, "--dtype 'int8': fp32, bf16 or fp16");
        StringAssert.Contains(TrainerRun.Run("consolidate", "--resume", run, "--output", early, "--max-shard-size", "5XB").Errors, "--max-shard-size '5XB' is not a size");

        // A weight beyond fp16's range is named, not written as an infinity.
        var model = Path.Combine(run, "step-000004", "model.safetensors");
        var first = layout.Slots[0];
        long at;
        using (var reader = Shardwise.Checkpoints.SafeTensorsReader.Open(model))
            at = new FileInfo(model).Length - reader.Tensors.Sum(t => t.ByteLength) + reader.GetInfo(first.Name).DataBegin + 3 * sizeof(float);
        using (var file = File.OpenHandle(model, FileMode.Open, FileAccess.Write))
            RandomAccess.Write(file, BitConverter.GetBytes(1e6f), at);
        StringAssert.Contains(TrainerRun.Run("consolidate", "--resume", run, "--output", early, "--dtype", "fp16").Errors,
            $"--dtype fp16: parameter '{first.Name}' holds 1E+06 at element 3, beyond fp16's range (±65504); use --dtype bf16 or fp32");
        Assert.AreEqual(1e6f, TrainerRun.CheckpointWeights(Path.Combine(run, "step-000004"))[first.Offset + 3], "the patch landed where the test meant");
    }

    /// <summary>comms_logger on a 2-rank ZeRO-2 job: rank 0 prints the summary of its own calls; the other rank prints nothing.</summary>
    [TestMethod]
    public void CommsLoggerSummarisesRankZerosCollectives()
    {
        var root = TrainerRun.TempDirectory();
        var config = Path.Combine(root, "ds.json");
        File.WriteAllText(config, """
            { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "steps_per_print": 10,
              "zero_optimization": { "stage": 2 }, "comms_logger": { "enabled": true, "prof_all": false, "prof_ops": ["reduce_scatter", "all_gather"] } }
            """);
        var settings = Shardwise.Training.Cli.RunSettings.Read(Shardwise.Training.Cli.CliArguments.Parse(["train", "--config", config, "--steps", "3", "--eval-interval", "0",
            "--output", Path.Combine(root, "run")]), "TinyGpt", TextWriter.Null);
        var outputs = new[] { new StringWriter(), new StringWriter() };
        var codes = Shardwise.Distributed.InProcess.InProcessGroup.Run(2,
            group => Shardwise.Training.Cli.TrainCommand.Run<Shardwise.Examples.TinyGpt>(settings, outputs[group.Rank], group), TimeSpan.FromMinutes(2));
        CollectionAssert.AreEqual(new[] { 0, 0 }, codes);

        string rank0 = outputs[0].ToString();
        StringAssert.Contains(rank0, "comms_logger summary (rank 0's calls):");
        var summary = rank0[rank0.IndexOf("comms_logger summary", StringComparison.Ordinal)..];
        var lines = summary.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        // One gradient reduce-scatter and one parameter all-gather of the whole padded layout per step.
        int scatter = lines.IndexOf("reduce_scatter"), gather = lines.IndexOf("all_gather");
        Assert.IsTrue(scatter > 0 && gather > 0, summary);
        Assert.AreEqual("3", lines[scatter + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[2], "three steps: " + lines[scatter + 1]);
        Assert.AreEqual("3", lines[gather + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[2], "three steps: " + lines[gather + 1]);
        Assert.IsFalse(summary.Contains("\nall_reduce", StringComparison.Ordinal), "prof_ops left all_reduce out");
        Assert.IsFalse(outputs[1].ToString().Contains("comms_logger", StringComparison.Ordinal), "only rank 0 reports");
    }

    [TestMethod]
    public void HuggingFaceAutoValuesComeFromTheCommandLine()
    {
        var root = TrainerRun.TempDirectory();
        var config = Path.Combine(root, "ds_config.json");
        File.WriteAllText(config, """
            { "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
              "optimizer": { "type": "AdamW", "params": { "lr": "auto", "weight_decay": "auto" } },
              "fp16": { "enabled": "auto" }, "zero_optimization": { "stage": 1 } }
            """);

        var (code, _, errors) = TrainerRun.Run("train", "--config", config, "--steps", "2", "--output", Path.Combine(root, "a"));
        Assert.AreEqual(2, code);
        StringAssert.Contains(errors, "$.optimizer.params.lr is \"auto\": pass --lr");

        var output = TrainerRun.Succeed("train", "--config", config, "--steps", "2", "--output", Path.Combine(root, "b"),
            "--micro-batch", "3", "--gradient-accumulation-steps", "2", "--lr", "5e-4", "--weight-decay", "0.01", "--fp16", "false");
        StringAssert.Contains(output, "micro 3 × accumulation 2");
    }

    [TestMethod]
    public void UnknownZeroStageIsRefusedWithTheJsonPath()
    {
        var root = TrainerRun.TempDirectory();
        var config = Path.Combine(root, "ds_config.json");
        File.WriteAllText(config, """{ "train_micro_batch_size_per_gpu": 2, "zero_optimization": { "stage": 4 } }""");
        var (code, _, errors) = TrainerRun.Run("train", "--config", config, "--steps", "5", "--output", Path.Combine(root, "run"));
        Assert.AreEqual(2, code);
        StringAssert.Contains(errors, "$.zero_optimization.stage");
    }

    [TestMethod]
    public void BenchWritesItsMeasurementAndTheModelFlopsAsJson()
    {
        var root = TrainerRun.TempDirectory();
        var json = Path.Combine(root, "bench.json");
        var output = TrainerRun.Succeed("bench", "--steps", "2", "--warmup", "1", "--json", json);

        // The CPU report keeps its table and footer.
        StringAssert.Contains(output, "| model | ranks | ZeRO | global batch | precision | ms/step | tokens/s |");
        StringAssert.Contains(output, "2 timed steps after 1 warm-up steps");
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(json));
        var result = document.RootElement;
        // TinyGpt: 4 attention layers of width 128 over 64 positions; 6·809,856 + 12·4·128·64 = 5,252,352.
        Assert.AreEqual(809_856, result.GetProperty("parameters").GetInt64());
        Assert.AreEqual(4, result.GetProperty("layers").GetInt32());
        Assert.AreEqual(128, result.GetProperty("width").GetInt32());
        Assert.AreEqual(64, result.GetProperty("context").GetInt32());
        Assert.AreEqual(5_252_352, result.GetProperty("flops_per_token").GetDouble());
        Assert.AreEqual("cpu", result.GetProperty("mode").GetString());
        Assert.IsTrue(result.GetProperty("tokens_per_s").GetDouble() > 0);
        Assert.AreEqual(System.Text.Json.JsonValueKind.Null, result.GetProperty("mfu").ValueKind);
    }

    [TestMethod]
    public void BenchProfileOnTheCpuTimesEveryOperation()
    {
        var output = TrainerRun.Succeed("bench", "--device", "cpu", "--steps", "2", "--warmup", "1", "--profile");

        StringAssert.Contains(output, "wall-clock time per operation (--profile; the timed steps, 2 of them):");
        StringAssert.Contains(output, "| operation | calls/step | ms/step | share |");
        // TinyGpt's step: the qkv, attention-output and fc1 Linears of 4 blocks and the head, 13 LinearBackward; fc2's
        // backward also takes the GeLU's gradient (GeluLinearBackward, 4); the loss and its gradient in one op.
        StringAssert.Contains(output, "| LinearBackward | 13 |");
        StringAssert.Contains(output, "| GeluLinearBackward | 4 |");
        StringAssert.Contains(output, "| CrossEntropyWithGradient | 1 |");
        StringAssert.Contains(output, "operations' time ");
        Assert.IsFalse(output.Contains("ignored", StringComparison.Ordinal), output);
    }

    /// <summary>An elasticity section decides the batch for the run's rank count, and the trainer says which sizes it allows.</summary>
    [TestMethod]
    public void ElasticityDecidesTheBatch()
    {
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "elastic.json");
        File.WriteAllText(config, """
            { "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } },
              "elasticity": { "enabled": true, "max_train_batch_size": 64, "micro_batch_sizes": [2, 4], "version": 0.1 } }
            """);
        var output = TrainerRun.Succeed("train", "--config", config, "--steps", "1", "--output", Path.Combine(root, "run"), "--eval-interval", "0");
        StringAssert.Contains(output, "batch: micro 4 × accumulation 12 × ranks 1 = 48 sequences");
        StringAssert.Contains(output, "elasticity (version 0.1): the batch of 48 trains on 1, 2, 3, 4, 6, 8, 12, 24 data-parallel ranks; this run's 1 take micro-batches of 4");
    }
}
