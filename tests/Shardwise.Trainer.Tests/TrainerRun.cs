using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Examples;
using Shardwise.Training.Cli;

namespace Shardwise.Trainer.Tests;

/// <summary>Runs the TinyGpt trainer in-process and captures what it prints.</summary>
internal static class TrainerRun
{
    public static (int ExitCode, string Output, string Errors) Run(params string[] args)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var previous = Console.Error;
        Console.SetError(errors);
        try
        {
            int code = TrainerCli.Run<TinyGpt>(args, output);
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
}
