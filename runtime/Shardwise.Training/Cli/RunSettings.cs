using System;
using System.IO;
using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>The options shared by the trainer's verbs, read once from the command line.</summary>
public sealed record RunSettings(
    DeepSpeedConfig Config,
    string? DataPath,
    string TokenizerKind,
    string OutputDirectory,
    string? ResumeDirectory,
    long TotalSteps,
    ulong Seed,
    long EvalInterval,
    int EvalBatches,
    long SaveInterval,
    bool PrintConfig)
{
    public const long DefaultStepsOnText = 2000;
    public const long DefaultStepsOnBuiltInTask = 400;

    public static RunSettings Read(CliArguments args, string modelName, TextWriter log)
    {
        string? configPath = args.String("config");
        string? data = args.String("data");
        string? resume = args.String("resume");
        // Resuming without --data continues on the data the checkpoint was trained on.
        if (data is null && resume is not null && TrainingCheckpoint.FindLatest(resume) is { } checkpoint)
            data = TrainingCheckpoint.ReadDataPath(checkpoint);
        string output = args.String("output") ?? resume ?? Path.Combine("runs", modelName);
        long steps = args.Long("steps") ?? (data is null ? DefaultStepsOnBuiltInTask : DefaultStepsOnText);
        // --steps also resolves a scheduler's "total_num_steps": "auto" (as the built-in config uses).
        // The built-in config's warmup is "auto": 100 steps (nanoGPT's), or a tenth of a shorter run.
        var overrides = new ConfigOverrides { TotalSteps = steps, WarmupSteps = Math.Clamp(steps / 10, 2, 100) };

        var loaded = configPath is null
            ? DeepSpeedConfig.Parse(DefaultConfig.Json, "<built-in default config>", overrides)
            : DeepSpeedConfig.Load(configPath, overrides);
        foreach (var warning in loaded.Warnings) log.WriteLine("config warning: " + warning);

        return new RunSettings(
            loaded.Config,
            data,
            args.String("tokenizer") ?? "char",
            output,
            resume,
            steps,
            (ulong)(args.Long("seed") ?? 1337),
            args.Long("eval-interval") ?? 100,
            (int)(args.Long("eval-batches") ?? 20),
            args.Long("save-interval") ?? 500,
            args.Flag("print-config"));
    }
}
