using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Pipeline.Tests;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// A scratch directory with a word corpus and a DeepSpeed config in which the trainer CLI of a generated test model
/// (Shardwise.Pipeline.Models) trains under mpirun, on the CPU backend or with every rank on its own emulated device:
/// each process loads the fake libcuda from SHARDWISE_CUDA_PATH, which mpirun passes on with -x.
/// </summary>
internal sealed class EmulatedJob : IDisposable
{
    private const string Exe = "Shardwise.Pipeline.Models.dll";
    private static readonly TimeSpan CommTimeout = TimeSpan.FromSeconds(60);
    private readonly string _model, _directory, _data, _config;

    /// <summary>AdamW with decay and clipping (which acts on every step), two micro-batches of 2 per step, a CSV row per step.</summary>
    /// <param name="precision">null for fp32, else the config section to enable: "fp16" or "bf16".</param>
    /// <param name="precisionSettings">More keys of that section, as JSON members (the fp16 loss scaler's).</param>
    /// <param name="zeroSettings">More keys of zero_optimization, as JSON members (bucket sizes).</param>
    /// <param name="optimizer">The optimizer section's value, as JSON (default: AdamW, lr 1e-2, decay 0.1).</param>
    /// <param name="topLevel">More top-level keys ("key": value, ...), or empty.</param>
    public EmulatedJob(string model, int zeroStage, string? precision = null, string precisionSettings = "", string zeroSettings = "",
        string optimizer = "{ \"type\": \"AdamW\", \"params\": { \"lr\": 1e-2, \"weight_decay\": 0.1 } }", string topLevel = "")
    {
        _model = model;
        _directory = Path.Combine(Path.GetTempPath(), $"shardwise-emulated-job-{model}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_directory);
        _data = Path.Combine(_directory, "words.txt");
        _config = Path.Combine(_directory, "ds_config.json");
        var random = new Random(1);
        string[] words = ["abc", "bad", "cab", "dace", "ace", "bead", "deed", "faced"];
        File.WriteAllText(_data, string.Join(" ", Enumerable.Range(0, 3000).Select(_ => words[random.Next(words.Length)])));
        string more = precisionSettings.Length > 0 ? ", " + precisionSettings : "";
        string precisionSection = precision is null ? "" : " \"" + precision + "\": { \"enabled\": true" + more + " },";
        File.WriteAllText(_config, $$"""
            { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "steps_per_print": 1, "gradient_clipping": 0.25,
              "zero_optimization": { "stage": {{zeroStage}}{{(zeroSettings.Length > 0 ? ", " + zeroSettings : "")}} },{{precisionSection}}
              "optimizer": {{optimizer}}{{(topLevel.Length > 0 ? ", " + topLevel : "")}} }
            """);
    }

    /// <summary>
    /// Trains <paramref name="steps"/> steps on <paramref name="ranks"/> MPI ranks with <c>--device</c>
    /// <paramref name="device"/> into a new directory named <paramref name="name"/>; returns it and the job's output.
    /// </summary>
    /// <param name="communicator">SHARDWISE_COMMUNICATOR for every rank (mpi: host-staged; nccl: the fake libnccl, one emulated
    /// device per rank; empty: unset, which a GPU job takes as auto, also with one emulated device per rank).</param>
    /// <param name="resume">Continue the run <paramref name="name"/> from its last checkpoint up to <paramref name="steps"/> in all.</param>
    public (string Directory, string Output) Train(string name, int ranks, int steps, string device, string communicator = "mpi",
        bool resume = false)
    {
        string output = Path.Combine(_directory, name);
        string[] arguments = ["cli", _model, "train", "--config", _config, "--data", _data, "--steps", steps.ToString(CultureInfo.InvariantCulture),
            "--eval-interval", "0", "--device", device, resume ? "--resume" : "--output", output];
        var environment = new Dictionary<string, string>
        {
            ["SHARDWISE_CUDA_PATH"] = EmulatedDevice.LibraryDirectory,
            ["SHARDWISE_REQUIRE_GPU"] = "1",
            ["SHARDWISE_COMMUNICATOR"] = communicator,
            ["OPENBLAS_NUM_THREADS"] = "1",
        };
        if (communicator is "nccl" or "")
        {
            // NCCL needs a device per rank: the fake driver presents one per rank, each process using its local rank's.
            environment["SHARDWISE_EMULATED_DEVICE_COUNT"] = ranks.ToString(CultureInfo.InvariantCulture);
            environment["NCCL_DEBUG"] = "INFO"; // the fake, like NCCL, then prints a line per rank that joined
        }
        MpiJob job = MpiJob.Run(Exe, ranks, CommTimeout, TimeSpan.FromMinutes(3), arguments, environment);
        Assert.AreEqual(0, job.ExitCode, job.Output);
        return (output, job.Output);
    }

    /// <summary>The CLI's plan for <paramref name="ranks"/> data-parallel ranks (one process): its "memory of rank 0" lines.</summary>
    public string Plan(int ranks)
    {
        MpiJob job = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(1),
            ["cli", _model, "plan", "--config", _config, "--ranks", ranks.ToString(CultureInfo.InvariantCulture)]);
        Assert.AreEqual(0, job.ExitCode, job.Output);
        return job.Output;
    }

    /// <summary>Writes the full fp32 weights of a data-parallel run's last checkpoint (the CLI's consolidate, one process).</summary>
    public string Consolidate(string run)
    {
        string weights = Path.Combine(run, "consolidated.safetensors");
        MpiJob job = MpiJob.Run(Exe, 0, CommTimeout, TimeSpan.FromMinutes(1), ["cli", _model, "consolidate", "--resume", run, "--output", weights]);
        Assert.AreEqual(0, job.ExitCode, job.Output);
        return weights;
    }

    /// <summary>A run's full fp32 weights: the pipelined trainer's weights.safetensors, else its consolidated last checkpoint.</summary>
    public string FinalWeights(string run)
    {
        string pipelined = Path.Combine(run, "weights.safetensors");
        return File.Exists(pipelined) ? pipelined : Consolidate(run);
    }

    /// <summary>The loss and gradient-norm columns of a run's metrics.csv, one row per step (steps_per_print is 1).</summary>
    public static (double Loss, double GradientNorm)[] Metrics(string run)
    {
        string[] lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        string[] header = lines[0].Split(',');
        int loss = Array.IndexOf(header, "loss"), norm = Array.IndexOf(header, "grad_norm");
        Assert.IsTrue(loss >= 0 && norm >= 0, $"metrics.csv of {run} has no loss or grad_norm column: {lines[0]}");
        return lines.Skip(1).Select(line => line.Split(','))
            .Select(cells => (double.Parse(cells[loss], CultureInfo.InvariantCulture), double.Parse(cells[norm], CultureInfo.InvariantCulture)))
            .ToArray();
    }

    /// <summary>One column of a run's metrics.csv as text, a cell per step.</summary>
    public static string[] Column(string run, string name)
    {
        string[] lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        int column = Array.IndexOf(lines[0].Split(','), name);
        Assert.IsTrue(column >= 0, $"metrics.csv of {run} has no {name} column: {lines[0]}");
        return lines.Skip(1).Select(line => line.Split(',')[column]).ToArray();
    }

    /// <summary>Loss and gradient norm of every step within <paramref name="tolerance"/> (relative) of the reference run's.</summary>
    public static void AssertSameTraining(string reference, string run, int steps, double tolerance)
        => AssertSameTraining(reference, run, steps, tolerance, tolerance);

    /// <summary>As above, with a tolerance of its own for the gradient norm.</summary>
    public static void AssertSameTraining(string reference, string run, int steps, double tolerance, double normTolerance)
    {
        var expected = Metrics(reference);
        var actual = Metrics(run);
        Assert.AreEqual(steps, expected.Length, $"{reference}: {expected.Length} rows in metrics.csv");
        Assert.AreEqual(steps, actual.Length, $"{run}: {actual.Length} rows in metrics.csv");
        for (int step = 0; step < steps; step++)
        {
            Assert.IsTrue(Relative(actual[step].Loss, expected[step].Loss) < tolerance,
                $"step {step + 1}: loss {actual[step].Loss:R}, the CPU run's {expected[step].Loss:R}");
            Assert.IsTrue(Relative(actual[step].GradientNorm, expected[step].GradientNorm) < normTolerance,
                $"step {step + 1}: gradient norm {actual[step].GradientNorm:R}, the CPU run's {expected[step].GradientNorm:R}");
        }
        Assert.IsTrue(expected[^1].Loss < expected[0].Loss - 0.05, $"the model did not learn: loss {expected[0].Loss} -> {expected[^1].Loss}");
    }

    /// <summary>|actual − expected| / |expected|; 0 when they are equal (a skipped step's gradient norm is 0 in both).</summary>
    private static double Relative(double actual, double expected) => actual == expected ? 0 : Math.Abs(actual - expected) / Math.Abs(expected);

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
