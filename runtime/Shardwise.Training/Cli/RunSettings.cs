using System;
using System.IO;
using Shardwise.Cuda;
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
    /// <summary>
    /// The backend (<c>--device cpu|cuda|auto</c>, default cpu), already resolved: auto has become cuda or cpu, and
    /// cuda was checked to be usable.
    /// </summary>
    public BackendKind Device { get; init; } = BackendKind.Cpu;

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
        // Values a config leaves as "auto" (Hugging Face style) come from these options; a number in the file wins.
        // --steps also fills total_num_steps, and the built-in config's warmup is "auto": 100 steps (nanoGPT's), or a
        // tenth of a shorter run.
        long warmup = args.Long("warmup-steps") ?? Math.Clamp(steps / 10, 2, 100);
        double? beta1 = args.Double("adam-beta1"), beta2 = args.Double("adam-beta2");
        var overrides = new ConfigOverrides
        {
            TotalSteps = args.Long("total-steps") ?? Math.Max(steps, warmup + 1),
            WarmupSteps = warmup,
            MicroBatchPerGpu = (int?)args.Long("micro-batch"),
            GradientAccumulationSteps = (int?)args.Long("gradient-accumulation-steps"),
            LearningRate = args.Double("lr"),
            Eps = args.Double("adam-eps"),
            WeightDecay = args.Double("weight-decay"),
            Betas = beta1 is null && beta2 is null ? null : (beta1 ?? 0.9, beta2 ?? 0.999),
            GradientClipping = args.Double("max-grad-norm"),
            Fp16 = args.String("fp16") is { } fp16 ? ParseBool("fp16", fp16) : null,
            Bf16 = args.String("bf16") is { } bf16 ? ParseBool("bf16", bf16) : null,
            HiddenSize = (int?)args.Long("hidden-size"),
        };

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
            args.Flag("print-config"))
        {
            Device = ReadDevice(args.String("device")),
        };
    }

    /// <summary>
    /// <c>--device</c>: cpu (the default), cuda, or auto (cuda when a GPU is usable). Asking for cuda where it is not
    /// usable is a one-line error with the driver's reason.
    /// </summary>
    public static BackendKind ReadDevice(string? value)
    {
        BackendKind requested;
        try
        {
            requested = value is null ? BackendKind.Cpu : Backends.Parse(value);
        }
        catch (ArgumentException)
        {
            throw new CliException($"--device needs one of {Backends.Names}; got '{value}'");
        }

        try
        {
            return Backends.Resolve(requested);
        }
        catch (BackendUnavailableException unavailable)
        {
            throw new CliException($"--device {value}: {unavailable.Message}");
        }
    }

    private static bool ParseBool(string option, string value) => value switch
    {
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" => false,
        _ => throw new CliException($"--{option} needs true or false; got '{value}'"),
    };
}
