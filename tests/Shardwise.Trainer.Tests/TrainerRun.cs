using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;
using Shardwise.Examples;
using Shardwise.Training.Cli;

namespace Shardwise.Trainer.Tests;

/// <summary>Runs the TinyGpt trainer in-process and captures what it prints.</summary>
internal static class TrainerRun
{
    public static (int ExitCode, string Output, string Errors) Run(params string[] args) => Run<TinyGpt>(args);

    /// <summary>Runs the trainer of <typeparamref name="TModel"/> in-process.</summary>
    public static (int ExitCode, string Output, string Errors) Run<TModel>(params string[] args) where TModel : Shardwise.Plans.ILanguageModelDefinition
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var previous = Console.Error;
        Console.SetError(errors);
        try
        {
            int code = TrainerCli.Run<TModel>(args, output);
            return (code, output.ToString(), errors.ToString());
        }
        finally
        {
            Console.SetError(previous);
        }
    }

    public static string Succeed(params string[] args)
    {
        var (code, output, errors) = Run(args);
        Assert.AreEqual(0, code, $"trainer failed: {errors}\n{output}");
        return output;
    }

    /// <summary>
    /// A small config (micro-batch 2, accumulation 2, a metrics row per step, AdamW) with <paramref name="extra"/>'s
    /// sections (each ending in a comma), written to <paramref name="directory"/>/<paramref name="name"/>.
    /// </summary>
    public static string WriteSmallConfig(string directory, string name, string extra)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, $$"""
            { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "steps_per_print": 1, {{extra}}
              "optimizer": { "type": "AdamW", "params": { "lr": 2e-3, "weight_decay": 0.1 } } }
            """);
        return path;
    }

    /// <summary>A column of a run's metrics.csv, a row per step (steps_per_print 1; a resumed run appends); NaN where empty.</summary>
    public static double[] MetricsColumn(string run, string name)
    {
        string[] lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        int column = Array.IndexOf(lines[0].Split(','), name);
        Assert.IsTrue(column >= 0, lines[0]);
        return lines.Skip(1).Select(line => line.Split(',')[column])
            .Select(v => v.Length == 0 ? double.NaN : double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>Each tensor of a safetensors file as "name:SHA-256 of its bytes", by name: equal lists are bitwise equal files' tensors.</summary>
    public static string[] TensorHashes(string path)
    {
        using var reader = Shardwise.Checkpoints.SafeTensorsReader.Open(path);
        return reader.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => t.Name + ":" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(reader.ReadAllBytes(t.Name))))
            .ToArray();
    }

    public static string TempDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), "shardwise-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    public static string SharedData(string file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln")))
                return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data", file));
        }
        throw new InvalidOperationException("repository root not found");
    }

    /// <summary>A config with fixed schedule lengths, so runs of different lengths share one learning-rate curve.</summary>
    public static string WriteConfig(string directory, string precision = "\"fp16\": { \"enabled\": false }", int micro = 4, int accumulation = 2)
    {
        var path = Path.Combine(directory, "ds_config.json");
        File.WriteAllText(path, $$"""
            {
              "train_micro_batch_size_per_gpu": {{micro}},
              "gradient_accumulation_steps": {{accumulation}},
              "steps_per_print": 5,
              "gradient_clipping": 1.0,
              "optimizer": { "type": "AdamW", "params": { "lr": 2e-3, "betas": [0.9, 0.99], "weight_decay": 0.1 } },
              "scheduler": { "type": "WarmupDecayLR", "params": { "warmup_num_steps": 5, "total_num_steps": 40, "warmup_max_lr": 2e-3 } },
              {{precision}}
            }
            """);
        return path;
    }

    /// <summary>A ZeRO config with accumulation 2 and AdamW, for comparing runs across rank counts.</summary>
    public static string WriteZeroConfig(string directory, int micro, int stage)
    {
        var path = Path.Combine(directory, $"ds_micro{micro}_stage{stage}.json");
        File.WriteAllText(path, $$"""
            { "train_micro_batch_size_per_gpu": {{micro}}, "gradient_accumulation_steps": 2, "steps_per_print": 100,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
              "zero_optimization": { "stage": {{stage}}, "stage3_param_persistence_threshold": 0 } }
            """);
        return path;
    }

    /// <summary>The full flat parameter buffer of a checkpoint's model.safetensors.</summary>
    public static float[] Weights(string path)
    {
        using var reader = SafeTensorsReader.Open(path);
        var all = new float[TinyGpt.ParameterLayout.TotalElements];
        foreach (var slot in TinyGpt.ParameterLayout.Slots) reader.Read(slot.Name, all.AsSpan((int)slot.Offset, (int)slot.Length));
        return all;
    }

    /// <summary>The full fp32 weights of a checkpoint directory, whether written whole or as per-rank partitions.</summary>
    public static float[] CheckpointWeights(string checkpoint)
    {
        var all = new float[TinyGpt.ParameterLayout.TotalElements];
        TrainingCheckpoint.LoadWeights(checkpoint, TinyGpt.ParameterLayout, all);
        return all;
    }

    /// <summary>‖a − b‖ / ‖b‖.</summary>
    public static double RelativeDifference(float[] a, float[] b)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            difference += (double)(a[i] - b[i]) * (a[i] - b[i]);
            norm += (double)b[i] * b[i];
        }
        return Math.Sqrt(difference / norm);
    }

    /// <summary>Copies a run directory (checkpoints included) so two continuations can start from it.</summary>
    public static void CopyDirectory(string source, string target)
    {
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }
}
