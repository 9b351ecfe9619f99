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

    private static string WriteConfig(string directory, double learningRate)
    {
        string path = Path.Combine(directory, $"ds_lr{learningRate}.json");
        File.WriteAllText(path, $$"""
            {
              "train_micro_batch_size_per_gpu": 2,
              "gradient_accumulation_steps": 1,
              "steps_per_print": 1,
              "gradient_clipping": 1.0,
              "optimizer": { "type": "AdamW", "params": { "lr": {{learningRate}}, "betas": [0.9, 0.99], "weight_decay": 0.1 } },
              "scheduler": { "type": "WarmupCosineLR", "params": { "warmup_num_steps": 1, "total_num_steps": {{Steps}}, "cos_min_ratio": 0.1 } }
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

    private static string Train(string directory, string name, string device, double learningRate)
    {
        string output = Path.Combine(directory, name);
        var (code, text, errors) = Trainer("train", "--device", device, "--config", WriteConfig(directory, learningRate),
            "--steps", $"{Steps}", "--eval-interval", $"{Steps}", "--eval-batches", "1", "--save-interval", "1000", "--output", output);
        Assert.AreEqual(0, code, $"{device} run failed: {errors}\n{text}");
        StringAssert.StartsWith(text, device == "cuda" ? "GPU: CUDA driver" : "CPU: asked for (--device cpu)");
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
}
