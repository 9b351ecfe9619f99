using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// A scratch directory with a small word corpus and a DeepSpeed config, in which the trainer CLI of one generated model
/// (Shardwise.Pipeline.Models) trains in one process or under mpirun; each run gets its own output directory.
/// </summary>
internal sealed class TrainingRun : IDisposable
{
    private const string Exe = "Shardwise.Pipeline.Models.dll";
    private readonly string _model, _directory, _data, _config;

    public TrainingRun(string model)
    {
        _model = model;
        _directory = Path.Combine(Path.GetTempPath(), $"shardwise-pipeline-ckpt-{model}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_directory);
        _data = Path.Combine(_directory, "words.txt");
        _config = Path.Combine(_directory, "ds_config.json");
        var random = new Random(1);
        string[] words = ["abc", "bad", "cab", "dace", "ace", "bead", "deed", "faced"];
        File.WriteAllText(_data, string.Join(" ", Enumerable.Range(0, 3000).Select(_ => words[random.Next(words.Length)])));
        File.WriteAllText(_config, Config(microBatch: 2, zeroStage: 0));
    }

    /// <summary>The runs' DeepSpeed config: AdamW with decay and clipping, two micro-batches per step, a CSV row per step.</summary>
    public static string Config(int microBatch, int zeroStage) => $$"""
        { "train_micro_batch_size_per_gpu": {{microBatch}}, "gradient_accumulation_steps": 2, "steps_per_print": 1, "gradient_clipping": 0.25,
          "zero_optimization": { "stage": {{zeroStage}} },
          "optimizer": { "type": "AdamW", "params": { "lr": 1e-2, "weight_decay": 0.1 } } }
        """;

    /// <summary>
    /// A compression_training section (with its leading comma) for the partitioned test models: 6→4-bit MoQ on every
    /// module from update 1, half of each block's "down" weights pruned from update 2, a quarter of its "up" rows from
    /// <paramref name="rowPruningOffset"/>.
    /// </summary>
    public static string CompressionSection(int rowPruningOffset) => $$"""
        , "compression_training": {
            "weight_quantization": { "shared_parameters": { "enabled": true, "schedule_offset": 1 },
              "different_groups": { "wq": { "params": { "start_bits": 6, "target_bits": 4, "quantization_period": 2 } } } },
            "sparse_pruning": { "shared_parameters": { "enabled": true, "schedule_offset": 2 },
              "different_groups": { "sp": { "params": { "dense_ratio": 0.5 }, "modules": ["down"] } } },
            "row_pruning": { "shared_parameters": { "enabled": true, "schedule_offset": {{rowPruningOffset}} },
              "different_groups": { "rp": { "params": { "dense_ratio": 0.75 }, "modules": ["up"] } } } }
        """;

    /// <summary>Writes another config into the scratch directory, for <see cref="Train"/>'s <c>config</c>.</summary>
    public string WriteConfig(string name, string json)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>
    /// Trains to <paramref name="steps"/> (ranks 0: one process, no mpirun) into a new directory named <paramref name="name"/>,
    /// whose log.txt holds the output; <paramref name="initFrom"/> starts a new run from trained weights (--init-from).
    /// </summary>
    public string Train(string name, int ranks, int steps, string? resume = null, string? config = null, string? initFrom = null)
    {
        string output = Path.Combine(_directory, name);
        string[] arguments = ["cli", _model, "train", "--config", config ?? _config, "--data", _data, "--steps", steps.ToString(CultureInfo.InvariantCulture),
            "--eval-interval", "0", "--output", output, .. resume is null ? Array.Empty<string>() : ["--resume", resume],
            .. initFrom is null ? Array.Empty<string>() : ["--init-from", initFrom]];
        MpiJob job = MpiJob.Run(Exe, ranks, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2), arguments);
        Assert.AreEqual(0, job.ExitCode, job.Output);
        File.WriteAllText(Path.Combine(output, "log.txt"), job.Output);
        return output;
    }

    /// <summary>The trainer's <c>plan</c> for a job of <paramref name="ranks"/> ranks (run in one process): its output.</summary>
    public string Plan(int ranks, string config)
    {
        MpiJob job = MpiJob.Run(Exe, 0, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1),
            ["cli", _model, "plan", "--config", config, "--ranks", ranks.ToString(CultureInfo.InvariantCulture)]);
        Assert.AreEqual(0, job.ExitCode, job.Output);
        return job.Output;
    }

    /// <summary>The loss column of a run's metrics.csv, one row per step (steps_per_print is 1).</summary>
    public static double[] Losses(string output) => File.ReadAllLines(Path.Combine(output, "metrics.csv")).Skip(1)
        .Select(line => double.Parse(line.Split(',')[2], CultureInfo.InvariantCulture)).ToArray();

    public static void AssertLossesMatch(double[] expected, double[] actual, double tolerance, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: {actual.Length} steps, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
            Assert.IsTrue(Math.Abs(actual[i] - expected[i]) / expected[i] < tolerance,
                $"{what}: loss {actual[i]:R} at the {i + 1}th step after the checkpoint, the uninterrupted run's {expected[i]:R}");
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
