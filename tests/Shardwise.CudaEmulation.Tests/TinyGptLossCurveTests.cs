using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Examples;
using Shardwise.Training.Cli;
using Shardwise.Training.Progress;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// The CI rehearsal of the GPU suite's loss-curve step (scripts/gpu-suite.sh): the real TinyGpt trainer,
/// <c>train --device cuda</c> on the emulated device and <c>--device cpu</c>, same config and seed, compared with
/// <c>compare-curves</c> at its default tolerances. A few small steps only: each emulated step costs seconds.
/// </summary>
[TestClass]
public sealed class TinyGptLossCurveTests
{
    private const int Steps = 4;

    private static string WriteConfig(string directory, double learningRate) => WriteConfig(directory, $"lr{learningRate}",
        $$"""{ "type": "AdamW", "params": { "lr": {{learningRate}}, "betas": [0.9, 0.99], "weight_decay": 0.1 } }""",
        $$"""{ "type": "WarmupCosineLR", "params": { "warmup_num_steps": 1, "total_num_steps": {{Steps}}, "cos_min_ratio": 0.1 } }""");

    private static string WriteConfig(string directory, string name, string optimizer, string scheduler, string extra = "")
    {
        string path = Path.Combine(directory, $"ds_{name}.json");
        File.WriteAllText(path, $$"""
            {
              "train_micro_batch_size_per_gpu": 2,
              "gradient_accumulation_steps": 1,
              "steps_per_print": 1,
              "gradient_clipping": 1.0,
              {{extra}}
              "optimizer": {{optimizer}},
              "scheduler": {{scheduler}}
            }
            """);
        return path;
    }

    private static (int Code, string Output, string Errors) Trainer(params string[] args)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var previous = Console.Error;
        Console.SetError(errors);
        try
        {
            return (TrainerCli.Run<TinyGpt>(args, output), output.ToString(), errors.ToString());
        }
        finally
        {
            Console.SetError(previous);
        }
    }

    private static string Train(string directory, string name, string device, double learningRate) =>
        Train(directory, name, device, WriteConfig(directory, learningRate));

    private static string Train(string directory, string name, string device, string config) => Train(directory, name, device, config, out _);

    /// <param name="log">The trainer's output (its "optimizer step:" line says where the step ran).</param>
    private static string Train(string directory, string name, string device, string config, out string log)
    {
        string output = Path.Combine(directory, name);
        var (code, text, errors) = Trainer("train", "--device", device, "--config", config,
            "--steps", $"{Steps}", "--eval-interval", $"{Steps}", "--eval-batches", "1", "--save-interval", "1000", "--output", output);
        Assert.AreEqual(0, code, $"{device} run failed: {errors}\n{text}");
        StringAssert.StartsWith(text, device == "cuda" ? "GPU: CUDA driver" : "CPU: asked for (--device cpu)");
        log = text;
        return Path.Combine(output, "metrics.csv");
    }

    [TestMethod]
    public void TrainingOnTheEmulatedGpuFollowsTheCpuLossCurve()
    {
        string directory = Path.Combine(Path.GetTempPath(), "shardwise-curve-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            string gpu = Train(directory, "gpu", "cuda", 1e-3);
            string cpu = Train(directory, "cpu", "cpu", 1e-3);
            // The control: a learning rate 10% off must be caught at the same tolerances.
            string wrong = Train(directory, "cpu-wrong-lr", "cpu", 1.1e-3);

            var (code, verdict, errors) = Trainer("compare-curves", "--reference", cpu, "--candidate", gpu);
            Console.WriteLine(verdict);
            Assert.AreEqual(0, code, $"{errors}\n{verdict}");
            StringAssert.Contains(verdict, "curves agree");
            var result = LossCurveComparison.Compare(LossCurve.Read(cpu), LossCurve.Read(gpu), 1, 1);
            Assert.AreEqual(Steps, result.Steps);
            Assert.AreEqual((long)Steps, result.FinalValidationStep);
            Assert.IsTrue(result.MaxLossDifference > 0, "the GPU's rounding differs from the CPU's: a zero would mean one backend ran twice");

            (code, verdict, _) = Trainer("compare-curves", "--reference", wrong, "--candidate", gpu);
            Console.WriteLine(verdict);
            Assert.AreEqual(CompareCurvesCommand.Differ, code, verdict);
            StringAssert.Contains(verdict, "curves differ");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// Block-sparse attention (bigbird, a random layout per head, blocks of 16) in bf16 on the emulated GPU, where the
    /// sparse flash kernels run, against the CPU's masked attention: the curves agree, and differ from the dense run's.
    /// </summary>
    [TestMethod]
    public void BlockSparseAttentionInBf16OnTheEmulatedGpuFollowsTheCpu()
    {
        InBf16FollowsTheCpuAndChangesTraining("sparse", """
            "sparse_attention": { "mode": "bigbird", "block": 16, "num_random_blocks": 1, "num_sliding_window_blocks": 1,
                                  "num_global_blocks": 1, "different_layout_per_head": true },
            """, "the sparse run's loss differs from the dense run's: the layout was applied");
    }

    /// <summary>
    /// The other optimizers and schedules on the emulated GPU against the CPU: AdamW under OneCycle, whose cyclic
    /// momentum reaches the device's fused Adam step as per-step betas, Lion under WarmupDecayLR on the device's
    /// fused Lion step (lion.cu), Adagrad under WarmupLR on adagrad.cu, and Lamb under LRRangeTest, which takes the host step over the device's arenas.
    /// </summary>
    [TestMethod]
    [DataRow("adamw-onecycle", """{ "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } }""",
        """{ "type": "OneCycle", "params": { "cycle_min_lr": 5e-4, "cycle_max_lr": 2e-3, "cycle_first_step_size": 2, "cycle_second_step_size": 2 } }""",
        "fused in the backend")]
    [DataRow("lion-warmupdecay", """{ "type": "Lion", "params": { "lr": 3e-4, "betas": [0.9, 0.99], "weight_decay": 0.1 } }""",
        """{ "type": "WarmupDecayLR", "params": { "warmup_num_steps": 2, "total_num_steps": 8 } }""",
        "fused in the backend")]
    [DataRow("adagrad-warmup", """{ "type": "Adagrad", "params": { "lr": 1e-2, "weight_decay": 0.01 } }""",
        """{ "type": "WarmupLR", "params": { "warmup_min_lr": 0, "warmup_max_lr": 1e-2, "warmup_num_steps": 2 } }""",
        "fused in the backend")]
    [DataRow("lamb-rangetest", """{ "type": "Lamb", "params": { "lr": 1e-3, "weight_decay": 0.01, "max_coeff": 0.3 } }""",
        """{ "type": "LRRangeTest", "params": { "lr_range_test_min_lr": 1e-3, "lr_range_test_step_size": 2 } }""",
        "on the host")]
    public void OtherOptimizersAndSchedulesOnTheEmulatedGpuFollowTheCpu(string name, string optimizer, string scheduler, string gpuStep)
    {
        string directory = Path.Combine(Path.GetTempPath(), "shardwise-curve-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            string config = WriteConfig(directory, name, optimizer, scheduler);
            string gpu = Train(directory, "gpu", "cuda", config, out string gpuLog), cpu = Train(directory, "cpu", "cpu", config);
            StringAssert.Contains(gpuLog, "optimizer step: " + gpuStep, $"{name}: where the GPU run's step ran");
            var (code, verdict, errors) = Trainer("compare-curves", "--reference", cpu, "--candidate", gpu);
            Console.WriteLine(verdict);
            Assert.AreEqual(0, code, $"{name}: {errors}\n{verdict}");
            StringAssert.Contains(verdict, "curves agree");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// Progressive layer drop in bf16 on the emulated GPU, where the skipped blocks' branches are zeroed and the kept ones
    /// scaled by scale.cu, against the CPU: the curves agree, and differ from the run without the drop (with gamma 1 the
    /// keep probability is 0.5–0.8 from the second step, so blocks are skipped).
    /// </summary>
    [TestMethod]
    public void ProgressiveLayerDropInBf16OnTheEmulatedGpuFollowsTheCpu()
    {
        InBf16FollowsTheCpuAndChangesTraining("pld", """
            "progressive_layer_drop": { "enabled": true, "theta": 0.5, "gamma": 1.0 },
            """, "the dropping run's loss differs from the plain run's: blocks were skipped");
    }

    /// <summary>
    /// Random-LTD in bf16: TinyGpt's middle blocks run on 16 of 64 tokens at first (token_drop.cu gathers and scatters
    /// them, attention runs over the kept sequence), against the CPU: the curves agree, and differ from the run that
    /// keeps every token.
    /// </summary>
    [TestMethod]
    public void RandomLtdInBf16OnTheEmulatedGpuFollowsTheCpu()
    {
        InBf16FollowsTheCpuAndChangesTraining("ltd", """
            "data_efficiency": { "enabled": true, "data_routing": { "enabled": true, "random_ltd": { "enabled": true,
                "total_layer_num": 4, "random_ltd_layer_num": 2, "random_ltd_layer_id": [1, 2],
                "random_ltd_schedule": { "min_value": 16, "max_value": 64, "schedule_type": "fixed_linear",
                                         "schedule_config": { "require_steps": 20, "seq_per_step": 8 } } } } },
            """, "the random-LTD run's loss differs from the plain run's: tokens were dropped");
    }

    /// <summary>
    /// compression_training in bf16: the engine leaves the device step for the host step, writes the quantized and
    /// pruned working copy into the parameter arena's mirror, and the device trains on it, as the CPU does.
    /// </summary>
    [TestMethod]
    public void CompressionTrainingInBf16OnTheEmulatedGpuFollowsTheCpu()
    {
        InBf16FollowsTheCpuAndChangesTraining("compressed", """
            "compression_training": {
              "weight_quantization": { "shared_parameters": { "enabled": true, "quantize_groups": 4, "quantize_weight_in_forward": true },
                "different_groups": { "wq": { "params": { "start_bits": 4, "target_bits": 4 }, "modules": ["attention", "expand", "contract"] } } },
              "row_pruning": { "shared_parameters": { "enabled": true, "schedule_offset": 5 },
                "different_groups": { "rp": { "params": { "dense_ratio": 0.5 }, "modules": ["expand"] } } } },
            """, "the compressed run's loss differs from the plain run's: the weights were quantized");
    }

    /// <summary>
    /// Activation quantization: quantize_rows.cu puts the chosen Linear layers' input rows on their grids before the GEMMs
    /// (the weight gradients' too), against the CPU backend's quantizer. In fp32 both quantize the same inputs: at 4
    /// bits on every attention and MLP Linear the curves agree and differ from the run without it. In bf16 the device
    /// quantizes bf16-stored inputs and the CPU fp32 ones, and a rounding that crosses one of only 16 levels moves a
    /// value by a sixteenth of its row's range (0.006 in loss by step 3, over compare-curves' 0.002), so bf16 is checked
    /// at 8 bits, where the curves agree.
    /// </summary>
    [TestMethod]
    public void ActivationQuantizationOnTheEmulatedGpuFollowsTheCpu()
    {
        static string Section(int bits) => """
            "compression_training": { "activation_quantization": {
              "shared_parameters": { "enabled": true, "quantization_type": "asymmetric", "schedule_offset": 0 },
              "different_groups": { "aq": { "params": { "bits": BITS }, "modules": ["attention", "expand", "contract"] } } } },
            """.Replace("BITS", bits.ToString(System.Globalization.CultureInfo.InvariantCulture));
        string directory = Path.Combine(Path.GetTempPath(), "shardwise-curve-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            const string Optimizer = """{ "type": "AdamW", "params": { "lr": 2e-3, "weight_decay": 0.1 } }""";
            const string Scheduler = """{ "type": "WarmupLR", "params": { "warmup_num_steps": 1 } }""";
            FollowsTheCpuAndChangesTraining(directory, WriteConfig(directory, "aq4", Optimizer, Scheduler, Section(4)), WriteConfig(directory, "plain", Optimizer, Scheduler, ""),
                "the quantized run's loss differs from the plain run's: the Linear inputs were quantized");
            string bf16 = WriteConfig(directory, "aq8-bf16", Optimizer, Scheduler, "\"bf16\": { \"enabled\": true },\n" + Section(8));
            var (code, verdict, errors) = Trainer("compare-curves", "--reference", Train(directory, "cpu-bf16", "cpu", bf16), "--candidate", Train(directory, "gpu-bf16", "cuda", bf16));
            Console.WriteLine(verdict);
            Assert.AreEqual(0, code, $"{errors}\n{verdict}");
            StringAssert.Contains(verdict, "curves agree");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// <see cref="FollowsTheCpuAndChangesTraining"/> for a feature's sections (<paramref name="sections"/>, each ending in
    /// a comma) in bf16 with AdamW under a one-step warm-up, against the same run without them.
    /// </summary>
    private static void InBf16FollowsTheCpuAndChangesTraining(string name, string sections, string changed)
    {
        string directory = Path.Combine(Path.GetTempPath(), "shardwise-curve-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            const string Optimizer = """{ "type": "AdamW", "params": { "lr": 2e-3, "weight_decay": 0.1 } }""";
            const string Scheduler = """{ "type": "WarmupLR", "params": { "warmup_num_steps": 1 } }""";
            string with = WriteConfig(directory, name, Optimizer, Scheduler, "\"bf16\": { \"enabled\": true },\n" + sections);
            string without = WriteConfig(directory, "plain", Optimizer, Scheduler, """ "bf16": { "enabled": true }, """);
            FollowsTheCpuAndChangesTraining(directory, with, without, changed);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// A feature's config trained on the emulated GPU and on the CPU: the curves agree at compare-curves' tolerances, and
    /// the CPU run without the feature (<paramref name="without"/>) has another loss, so the feature acted.
    /// </summary>
    private static void FollowsTheCpuAndChangesTraining(string directory, string with, string without, string changed)
    {
        string gpu = Train(directory, "gpu", "cuda", with), cpu = Train(directory, "cpu", "cpu", with);
        string cpuWithout = Train(directory, "cpu-without", "cpu", without);
        var (code, verdict, errors) = Trainer("compare-curves", "--reference", cpu, "--candidate", gpu);
        Console.WriteLine(verdict);
        Assert.AreEqual(0, code, $"{errors}\n{verdict}");
        StringAssert.Contains(verdict, "curves agree");
        Assert.IsTrue(LossCurveComparison.Compare(LossCurve.Read(cpuWithout), LossCurve.Read(cpu), 1, 1).MaxLossDifference > 1e-3, changed);
    }
}
