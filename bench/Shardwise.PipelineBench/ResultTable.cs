using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Shardwise.Plans;
using Shardwise.Training.Pipeline;

namespace Shardwise.PipelineBench;

/// <summary>
/// Prints the benchmark as a Markdown table, one row per run, in a fixed format (invariant culture, fixed columns) so
/// rows of several invocations line up under one header.
/// </summary>
internal sealed class ResultTable(TextWriter output)
{
    public void WriteHeader(BenchOptions options, int ranks)
    {
        int cores = MachineCores();
        string oversubscribed = ranks > cores ? $" — oversubscribed: {ranks} ranks share {cores} cores" : "";
        output.WriteLine(Invariant($"# pipeline bench, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: {BenchGptShape.Depth} blocks, ") +
            Invariant($"width {BenchGptShape.Width}, {BenchGptShape.Heads} heads, context {BenchGptShape.Context}, ") +
            Invariant($"vocabulary {BenchGptShape.Vocabulary} (TinyGpt's architecture), {TwoStageGpt.ParameterLayout.ParameterCount:N0} parameters; ") +
            "CPU backend, fp32, AdamW, 1F1B");
        // The CPU backend's worker pool has a thread per core this process sees (DOTNET_PROCESSOR_COUNT overrides it).
        output.WriteLine($"# machine: {cores} cores ({CpuModel()}); per process: {Environment.ProcessorCount} CPU backend thread(s), " +
            $"OPENBLAS_NUM_THREADS={Environment.GetEnvironmentVariable("OPENBLAS_NUM_THREADS") ?? "unset"}; this job: {ranks} rank(s){oversubscribed}");
        if (options.Stages > 1)
        {
            ModelPartition partition = options.Stages == 2 ? TwoStageGpt.Partition : FourStageGpt.Partition;
            output.WriteLine($"# stages: {string.Join("; ", partition.Stages.Select(s => $"{s.Index}: {s.Layers} ({s.Layout.ParameterCount:N0} params)"))}");
        }
        output.WriteLine("# ms/step: mean over ranks and timed steps; idle: a stage's time blocked in receives / its step time " +
            "(PipelineEngine.LastIdleFraction); all waits: receives + sends + collectives (tied gradients, norm, loss) / step time; " +
            "theory: (p − 1)/(m + p − 1); speed-up: the p = 1 row's ms/step over this row's, measured in the same job");
        output.WriteLine("| p | m | micro-batch | ms/step | idle per stage | mean idle | all waits per stage | mean all waits | theory | tokens/s | last loss | speed-up vs p = 1 |");
        output.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
    }

    /// <param name="baseline">The one-process row measured in this job, if any.</param>
    public void WriteRow(BenchRow row, BenchRow? baseline)
    {
        bool pipelined = row.Stages > 1;
        string idle = pipelined ? string.Join(" ", row.IdlePerStage.Select(Percent)) : "–";
        string mean = pipelined ? Percent(row.MeanIdle) : "–";
        string waits = pipelined ? string.Join(" ", row.WaitPerStage.Select(Percent)) : "–";
        string meanWait = pipelined ? Percent(row.MeanWait) : "–";
        string theory = Percent(OneFOneBSchedule.BubbleFraction(row.Stages, row.MicroBatches));
        string speedUp = baseline is null ? "–" : Invariant($"{baseline.MillisecondsPerStep / row.MillisecondsPerStep:F2}×");
        output.WriteLine(Invariant($"| {row.Stages} | {row.MicroBatches} | {row.MicroBatch} | {row.MillisecondsPerStep:F1} | {idle} | {mean} | {waits} | {meanWait} | ") +
            Invariant($"{theory} | {row.TokensPerSecond:N0} | {row.Loss:F4} | {speedUp} |"));
        output.Flush();
    }

    private static string Percent(double fraction) => Invariant($"{fraction * 100:F1}%");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>The machine's cores, not this process's share (mpirun may bind a rank to one core).</summary>
    private static int MachineCores()
    {
        const string cpuInfo = "/proc/cpuinfo";
        if (!File.Exists(cpuInfo)) return Environment.ProcessorCount;
        int processors = File.ReadLines(cpuInfo).Count(line => line.StartsWith("processor", StringComparison.Ordinal));
        return processors > 0 ? processors : Environment.ProcessorCount;
    }

    private static string CpuModel()
    {
        const string cpuInfo = "/proc/cpuinfo";
        string? line = File.Exists(cpuInfo) ? File.ReadLines(cpuInfo).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
        return line is null ? "CPU model unknown" : line[(line.IndexOf(':') + 1)..].Trim();
    }
}
