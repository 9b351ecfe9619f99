using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Text;
using Shardwise.Ops;

namespace Shardwise.Cpu;

/// <summary>
/// Wall-clock time per <see cref="CpuOps{T}"/> operation, for <c>bench --profile</c> on the CPU. CPU operations are
/// synchronous, so an operation's time is exactly the time from its entry to its return; unlike the CUDA profiler's
/// marks, nothing between two operations (the optimizer step, the data, the engine's bookkeeping) is counted in either.
/// Only the outermost operation is timed when one calls another.
/// </summary>
public sealed class CpuOpsProfiler
{
    private readonly Dictionary<string, (long Calls, long Ticks)> totals = [];
    private int depth;
    private string operation = "";
    private long started;

    /// <summary>Starts timing <paramref name="name"/> unless an operation is already running; dispose to stop.</summary>
    internal Scope Enter(string name)
    {
        if (depth++ == 0)
        {
            operation = name;
            started = Stopwatch.GetTimestamp();
        }
        return new Scope(this);
    }

    private void Exit()
    {
        if (--depth != 0) return;
        long ticks = Stopwatch.GetTimestamp() - started;
        totals[operation] = totals.TryGetValue(operation, out var total) ? (total.Calls + 1, total.Ticks + ticks) : (1, ticks);
    }

    /// <summary>The totals per operation so far, largest first.</summary>
    public IReadOnlyList<OperationTime> Collect() => totals
        .Select(entry =>
        {
            double ms = entry.Value.Ticks * 1000.0 / Stopwatch.Frequency;
            return new OperationTime(entry.Key, entry.Value.Calls, ms, ms);
        })
        .OrderByDescending(time => time.Milliseconds).ToList();

    /// <summary>One markdown table per step (operation, calls, ms, share of the operations' time) and a closing line
    /// that sets the operations' time against the step's wall-clock time.</summary>
    public static string Describe(IReadOnlyList<OperationTime> times, long steps, double wallMillisecondsPerStep)
    {
        var invariant = CultureInfo.InvariantCulture;
        double total = times.Sum(time => time.Milliseconds) / steps;
        var text = new StringBuilder();
        text.AppendLine("| operation | calls/step | ms/step | share |");
        text.AppendLine("|---|---|---|---|");
        foreach (OperationTime time in times)
        {
            text.AppendLine(string.Format(invariant, "| {0} | {1:0.#} | {2:F2} | {3:P1} |", time.Operation,
                (double)time.Calls / steps, time.Milliseconds / steps, total > 0 ? time.Milliseconds / steps / total : 0));
        }
        text.Append(string.Format(invariant,
            "operations' time {0:F1} ms/step of {1:F1} ms/step wall-clock (the rest: the optimizer step, gradient clipping, data and host work outside operations)",
            total, wallMillisecondsPerStep));
        return text.ToString();
    }

    /// <summary>Ends an <see cref="Enter"/>; the default value (no profiler) does nothing.</summary>
    internal readonly struct Scope(CpuOpsProfiler? profiler) : IDisposable
    {
        public void Dispose() => profiler?.Exit();
    }
}
