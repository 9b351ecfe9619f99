using System;
using System.Globalization;

namespace Shardwise.PipelineBench;

/// <summary>The command line: <c>--stages P --micro-batches M --micro-batch B --steps N [--warmup W] [--baseline] [--rows-only]</c>.</summary>
internal sealed record BenchOptions(int Stages, int MicroBatches, int MicroBatch, int Steps, int Warmup, bool Baseline, bool RowsOnly)
{
    public const string Usage =
        "usage: [mpirun -np P] dotnet Shardwise.PipelineBench.dll [--stages P] [--micro-batches M] [--micro-batch B] [--steps N] " +
        "[--warmup W] [--baseline] [--rows-only]\n" +
        "  --stages P         pipeline stages: 1 (the whole program, one process), 2 or 4; default: the number of ranks\n" +
        "  --micro-batches M  micro-batches per step (1F1B over M; gradient accumulation for P = 1); default 4\n" +
        "  --micro-batch B    sequences per micro-batch; default 4\n" +
        "  --steps N          timed steps after the warm-up; default 10\n" +
        "  --warmup W         untimed steps first (JIT, caches, OpenBLAS buffers); default 3\n" +
        "  --baseline         before the pipelined steps, rank 0 alone trains the whole program on the same global batch\n" +
        "                     (the other ranks wait), and the pipelined row shows its speed against that\n" +
        "  --rows-only        print only the table rows (the script prints the header once)";

    /// <summary>Parses <paramref name="args"/>; <paramref name="ranks"/> is the default stage count.</summary>
    public static BenchOptions Parse(string[] args, int ranks)
    {
        var options = new BenchOptions(ranks, 4, 4, 10, 3, Baseline: false, RowsOnly: false);
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            options = name switch
            {
                "--stages" => options with { Stages = Positive(args, ref i) },
                "--micro-batches" => options with { MicroBatches = Positive(args, ref i) },
                "--micro-batch" => options with { MicroBatch = Positive(args, ref i) },
                "--steps" => options with { Steps = Positive(args, ref i) },
                "--warmup" => options with { Warmup = NonNegative(args, ref i) },
                "--baseline" => options with { Baseline = true },
                "--rows-only" => options with { RowsOnly = true },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }
        if (options.Stages is not (1 or 2 or 4))
            throw new ArgumentException($"--stages {options.Stages}: the benchmark models are planned for 2 and 4 stages (1: the whole program)");
        if (options.Stages > 1 && options.Stages != ranks)
            throw new ArgumentException($"--stages {options.Stages} needs one rank per stage: launch with mpirun -np {options.Stages} (this job has {ranks})");
        if (options.Stages == 1 && ranks != 1)
            throw new ArgumentException($"--stages 1 runs the whole program in one process; this job has {ranks} ranks (use --baseline with P stages instead)");
        return options;
    }

    private static int Positive(string[] args, ref int i)
    {
        int value = NonNegative(args, ref i);
        if (value < 1) throw new ArgumentException($"{args[i - 1]} must be at least 1, got {value}");
        return value;
    }

    private static int NonNegative(string[] args, ref int i)
    {
        string name = args[i];
        if (++i >= args.Length) throw new ArgumentException($"{name} needs a value");
        if (!int.TryParse(args[i], NumberStyles.None, CultureInfo.InvariantCulture, out int value))
            throw new ArgumentException($"{name} takes a whole number ≥ 0, got '{args[i]}'");
        return value;
    }
}
