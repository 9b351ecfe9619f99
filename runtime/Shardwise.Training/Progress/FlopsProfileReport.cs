using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Shardwise.Plans;
using Shardwise.Training.Config;

namespace Shardwise.Training.Progress;

/// <summary>What one profiled optimizer step measured, on rank 0: times summed over the step's micro-batches.</summary>
public sealed record ProfiledStep(long Step, double ForwardMilliseconds, double BackwardMilliseconds, double OptimizerMilliseconds, double IterationMilliseconds);

/// <summary>
/// DeepSpeed's FLOPS profiler report for a generated program: the profiled step's measured forward, backward and
/// optimizer times set against the program's static FLOPs, then the module tree's parameters and FLOPs (the top modules
/// per depth and, with <c>detailed</c>, every module down to <c>module_depth</c>). FLOPs count per micro-batch of one
/// rank (a multiply-add is two); latencies are the step's averages per micro-batch. The times are not split by module:
/// the generated program runs as one straight-line pass (<c>bench --profile</c> splits them by operation kind).
/// </summary>
public static class FlopsProfileReport
{
    public static string Describe(string modelName, IReadOnlyList<OperationCost> operations, ParameterLayout layout, BatchSizes batch, int worldSize,
        FlopsProfilerConfig config, ProfiledStep measured)
    {
        var modules = ModuleCosts.Of(operations, layout);
        long samples = batch.MicroBatchPerGpu, micro = batch.GradientAccumulationSteps;
        double forwardFlops = modules[0].ForwardFlopsPerSample * (double)samples;
        double backwardFlops = (modules[0].BackwardFlopsPerSample + config.RecomputeForwardFactor * modules[0].ForwardFlopsPerSample) * samples;
        double forwardMs = measured.ForwardMilliseconds / micro, backwardMs = measured.BackwardMilliseconds / micro;
        double iterationSeconds = measured.IterationMilliseconds / 1000;

        var text = new StringBuilder();
        void Line(string label, string value) => text.Append(label.PadRight(52)).Append(value).Append('\n');
        text.Append($"-------------------------- Shardwise FLOPS profiler --------------------------\n");
        text.Append(Invariant($"profile summary at step {measured.Step}:\n"));
        text.Append("FLOPs are the generated program's static count per micro-batch of one rank; times are measured on rank 0.\n\n");
        Line("world size:", Invariant($"{worldSize}"));
        Line("data parallel size:", Invariant($"{batch.DataParallelSize}"));
        Line("batch size per GPU (micro-batch):", Invariant($"{batch.MicroBatchPerGpu}"));
        Line("gradient accumulation steps:", Invariant($"{batch.GradientAccumulationSteps}"));
        Line("params of the model:", Count(layout.ParameterCount));
        Line("fwd FLOPs per micro-batch:", Flops(forwardFlops));
        Line("bwd FLOPs per micro-batch:", Flops(backwardFlops) + (config.RecomputeForwardFactor > 0 ? Invariant($" (recompute_fwd_factor {config.RecomputeForwardFactor:0.###} included)") : ""));
        Line("fwd + bwd FLOPs per micro-batch:", Flops(forwardFlops + backwardFlops));
        Line("fwd latency (per micro-batch):", Milliseconds(forwardMs));
        Line("fwd FLOPS per GPU = fwd FLOPs / fwd latency:", Throughput(forwardFlops, forwardMs));
        Line("bwd latency (per micro-batch):", Milliseconds(backwardMs));
        Line("bwd FLOPS per GPU = bwd FLOPs / bwd latency:", Throughput(backwardFlops, backwardMs));
        Line("fwd + bwd FLOPS per GPU:", Throughput(forwardFlops + backwardFlops, forwardMs + backwardMs));
        Line("optimizer step latency:", Milliseconds(measured.OptimizerMilliseconds));
        Line("iteration latency (the whole optimizer step):", Milliseconds(measured.IterationMilliseconds));
        Line("FLOPS per GPU over the whole iteration:", Throughput(micro * (forwardFlops + backwardFlops), measured.IterationMilliseconds));
        Line("samples/second:", iterationSeconds > 0 ? Invariant($"{batch.TrainBatchSize / iterationSeconds:0.00}") : "-");

        int deepest = modules.Max(m => m.Depth);
        int depthLimit = config.ModuleDepth < 0 ? deepest : Math.Min(config.ModuleDepth, deepest);
        text.Append("\n----------------------------- aggregated profile per GPU -----------------------------\n");
        text.Append(Invariant($"top {config.TopModules} module(s) by parameters and by fwd FLOPs at each depth:\n"));
        for (int depth = 0; depth <= depthLimit; depth++)
        {
            var level = modules.Where(m => m.Depth == depth).ToList();
            string Top(Func<ModuleCost, long> key, Func<long, string> format) => string.Join(", ",
                level.OrderByDescending(key).ThenBy(m => m.Path, StringComparer.Ordinal).Take(config.TopModules).Select(m => $"{Name(m.Path, modelName)}: {format(key(m))}"));
            text.Append(Invariant($"depth {depth}:\n"));
            text.Append("    params      - {").Append(Top(m => m.Parameters, Count)).Append("}\n");
            text.Append("    fwd FLOPs   - {").Append(Top(m => m.ForwardFlopsPerSample * samples, v => Flops(v))).Append("}\n");
        }

        if (config.Detailed)
        {
            text.Append("\n------------------------------ detailed profile per GPU ------------------------------\n");
            text.Append("each module: params (share of the model's), fwd FLOPs (share), bwd FLOPs; no per-module latency (one straight-line pass)\n");
            foreach (var module in modules.Where(m => m.Depth <= depthLimit))
            {
                text.Append(new string(' ', 2 * module.Depth)).Append(Name(module.Path, modelName)).Append(": ")
                    .Append(Count(module.Parameters)).Append(Share(module.Parameters, layout.ParameterCount)).Append(" params, ")
                    .Append(Flops(module.ForwardFlopsPerSample * (double)samples)).Append(Share(module.ForwardFlopsPerSample, modules[0].ForwardFlopsPerSample)).Append(" fwd, ")
                    .Append(Flops(module.BackwardFlopsPerSample * (double)samples)).Append(" bwd\n");
            }
        }
        text.Append("------------------------------------------------------------------------------");
        return text.ToString();
    }

    private static string Name(string path, string modelName) => path.Length == 0 ? modelName : path;

    private static string Share(long part, long whole) => whole > 0 ? Invariant($" ({100.0 * part / whole:0.00}%)") : "";

    /// <summary>809.86 K, 1.2 M: DeepSpeed's short counts.</summary>
    public static string Count(long value) => Scaled(value, "");

    public static string Flops(double value) => Scaled(value, "FLOPs");

    private static string Throughput(double flops, double milliseconds) => milliseconds > 0 ? Scaled(flops / (milliseconds / 1000), "FLOPS") : "-";

    private static string Milliseconds(double value) => Invariant($"{value:0.00} ms");

    private static string Scaled(double value, string unit)
    {
        (double Divisor, string Prefix)[] scales = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")];
        foreach (var (divisor, prefix) in scales)
            if (Math.Abs(value) >= divisor) return Invariant($"{value / divisor:0.00} {prefix}{unit}");
        return Invariant($"{value:0.##}") + (unit.Length > 0 ? " " + unit : "");
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
