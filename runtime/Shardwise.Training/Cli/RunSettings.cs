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
    /// The backend (<c>--device cpu|cuda|auto</c>, else <c>SHARDWISE_DEVICE</c>, else auto), already resolved: auto has
    /// become cuda or cpu, cuda was checked to be usable, and the line to print says which and why.
    /// </summary>
    public BackendChoice DeviceChoice { get; init; } = new(BackendKind.Cpu, "CPU: chosen in code");

    /// <summary>
    /// <c>--packing</c>: prompt/completion examples packed into windows at any offset (TRL's packing) instead of one
    /// example per row, padded. No effect on plain text, which is always one packed stream.
    /// </summary>
    public bool Packing { get; init; }

    /// <summary>
    /// <c>--init-from PATH</c>: trained weights a new run starts from (step 0, fresh optimizer state) instead of the
    /// seed's initialisation (<see cref="PretrainedWeights"/>); null: the seed's.
    /// </summary>
    public string? InitFrom { get; init; }

    /// <summary>What was asked for: <see cref="BackendKind.Auto"/> unless --device or SHARDWISE_DEVICE named one.</summary>
    public BackendKind DeviceRequested { get; init; } = BackendKind.Cpu;

    /// <summary>The backend to build programs over: <see cref="BackendKind.Cpu"/> or <see cref="BackendKind.Cuda"/>.</summary>
    public BackendKind Device => DeviceChoice.Kind;

    /// <summary>The environment variable that chooses the device when <c>--device</c> is not given.</summary>
    public const string DeviceVariable = "SHARDWISE_DEVICE";

    public const long DefaultStepsOnText = 2000;
    public const long DefaultStepsOnBuiltInTask = 400;

    public static RunSettings Read(CliArguments args, string modelName, TextWriter log)
    {
        string? configPath = args.String("config");
        string? data = args.String("data");
        string? resume = args.String("resume");
        string? initFrom = args.String("init-from");
        if (initFrom is not null && resume is not null)
            throw new CliException($"--init-from {initFrom} starts a new run from trained weights and --resume {resume} continues a run: pass one of them");
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

        var (requested, choice) = ChooseDevice(args.String("device"));
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
            DeviceRequested = requested,
            DeviceChoice = choice,
            Packing = args.Flag("packing"),
            InitFrom = initFrom,
        };
    }

    /// <summary>
    /// The device: <c>--device</c> (<paramref name="option"/>), else <c>SHARDWISE_DEVICE</c>
    /// (<paramref name="environment"/>), else auto: CUDA when <paramref name="probe"/> finds a GPU, else the CPU.
    /// An unknown name, or cuda where it is not usable, is a one-line error naming where the value came from.
    /// </summary>
    public static (BackendKind Requested, BackendChoice Choice) ChooseDevice(string? option, string? environment, CudaProbe probe)
    {
        string? value = option ?? (string.IsNullOrWhiteSpace(environment) ? null : environment);
        string source = option is not null ? $"--device {option}" : value is not null ? $"{DeviceVariable}={value}" : "auto";
        string where = option is not null ? "--device" : DeviceVariable;
        BackendKind requested;
        try
        {
            requested = value is null ? BackendKind.Auto : Backends.Parse(value);
        }
        catch (ArgumentException)
        {
            throw new CliException($"{where} needs one of {Backends.Names}; got '{value}'");
        }

        try
        {
            return (requested, Backends.Choose(requested, source, probe));
        }
        catch (BackendUnavailableException unavailable)
        {
            throw new CliException($"{source}: {unavailable.Message}");
        }
    }

    /// <summary><see cref="ChooseDevice(string?, string?, CudaProbe)"/> with this process's environment and GPU.</summary>
    public static (BackendKind Requested, BackendChoice Choice) ChooseDevice(string? option)
        => ChooseDevice(option, Environment.GetEnvironmentVariable(DeviceVariable), CudaRuntime.TryInitialize);

    private static bool ParseBool(string option, string value) => value switch
    {
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" => false,
        _ => throw new CliException($"--{option} needs true or false; got '{value}'"),
    };
}
