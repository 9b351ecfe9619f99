using System;
using System.IO;
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

        var consolidated = Path.Combine(root, "weights.safetensors");
        StringAssert.Contains(TrainerRun.Succeed("consolidate", "--resume", run, "--output", consolidated), "809,856 fp32 parameters");
        CollectionAssert.AreEqual(TrainerRun.Weights(Path.Combine(run, "step-000030", "model.safetensors")), TrainerRun.Weights(consolidated));
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
}
