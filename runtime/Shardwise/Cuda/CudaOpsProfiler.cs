using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Text;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>
/// Device time per <see cref="CudaOps"/> operation, for <c>bench --profile</c>. Every operation records an event on the
/// one stream the backend uses as it starts; everything on that stream runs in order, so the time from one operation's
/// event to the next one's is the device time of the first (its kernels and GEMMs), plus any time the device sat idle
/// waiting for the host to queue the next operation. That idle time cannot be told apart from the events alone; the
/// report therefore also gives the host's time from each mark to the next (an operation whose host time is close to its
/// device time was paced by the host) and the wall-clock time of the step.
/// Events are reused: when the pool is full, the finished pairs are added up and the last event becomes the first.
/// <para>
/// Inside an operation, each kernel launch and cuBLAS call is marked too, as "Operation › kernel" or
/// "Operation › gemm M×N×K"; an operation's own mark then covers only the moment before its first launch.
/// <see cref="ByOperation"/> adds the parts of each operation back up.
/// </para>
/// </summary>
public sealed class CudaOpsProfiler : IDisposable
{
    private const int PoolSize = 4096;

    private readonly CudaContext context;
    private readonly List<CudaEvent> events = [];
    private readonly List<string> names = [];
    private readonly List<long> hostTicks = [];
    private readonly Dictionary<string, (long Calls, double Milliseconds, double HostMilliseconds)> totals = [];
    private int used;

    internal CudaOpsProfiler(CudaContext context) => this.context = context;

    /// <summary>Marks the start of operation <paramref name="operation"/> on the legacy default stream.</summary>
    internal void Mark(string operation)
    {
        if (used == PoolSize) Flush();
        if (used == events.Count) events.Add(CudaEvent.Create(context));
        events[used].Record();
        if (used < names.Count)
        {
            names[used] = operation;
            hostTicks[used] = Stopwatch.GetTimestamp();
        }
        else
        {
            names.Add(operation);
            hostTicks.Add(Stopwatch.GetTimestamp());
        }
        used++;
    }

    /// <summary>Adds up every finished pair so far (waits for the last marked event) and keeps the last as the first.</summary>
    private void Flush()
    {
        if (used < 2) return;
        events[used - 1].Synchronize();
        for (int i = 0; i + 1 < used; i++)
        {
            double ms = CudaEvent.ElapsedMilliseconds(events[i], events[i + 1]);
            double host = Stopwatch.GetElapsedTime(hostTicks[i], hostTicks[i + 1]).TotalMilliseconds;
            totals[names[i]] = totals.TryGetValue(names[i], out var t)
                ? (t.Calls + 1, t.Milliseconds + ms, t.HostMilliseconds + host)
                : (1, ms, host);
        }
        (events[0], events[used - 1]) = (events[used - 1], events[0]);
        names[0] = names[used - 1];
        hostTicks[0] = hostTicks[used - 1];
        used = 1;
    }

    /// <summary>
    /// Closes the last operation with an end mark, waits for the device and returns the totals per operation, largest
    /// first.
    /// </summary>
    public IReadOnlyList<OperationTime> Collect()
    {
        Mark("(end)");
        Flush();
        return totals.Select(entry => new OperationTime(entry.Key, entry.Value.Calls, entry.Value.Milliseconds, entry.Value.HostMilliseconds))
            .OrderByDescending(time => time.Milliseconds).ToList();
    }

    /// <summary>The separator between an operation and a launch inside it.</summary>
    public const string Separator = " › ";

    /// <summary>
    /// Totals per operation: its own mark's calls (one per call of the operation) and the time of its mark and of every
    /// launch marked inside it. Largest first.
    /// </summary>
    public static IReadOnlyList<OperationTime> ByOperation(IReadOnlyList<OperationTime> times)
    {
        static string OperationOf(string name)
        {
            int at = name.IndexOf(Separator, StringComparison.Ordinal);
            return at < 0 ? name : name[..at];
        }

        return times.GroupBy(time => OperationOf(time.Operation))
            .Select(group => new OperationTime(group.Key,
                group.Where(time => time.Operation == group.Key).Sum(time => time.Calls),
                group.Sum(time => time.Milliseconds), group.Sum(time => time.HostMilliseconds)))
            .OrderByDescending(time => time.Milliseconds).ToList();
    }

    /// <summary>
    /// Two markdown tables per step, with the share of the device time: per operation (<see cref="ByOperation"/>), then
    /// the <paramref name="launches"/> largest kernel launches and GEMMs.
    /// </summary>
    public static string Describe(IReadOnlyList<OperationTime> times, long steps, double wallMillisecondsPerStep, int launches = 25)
    {
        var invariant = CultureInfo.InvariantCulture;
        double total = times.Sum(time => time.Milliseconds) / steps;
        var text = new StringBuilder();
        void Table(string heading, IEnumerable<OperationTime> rows)
        {
            text.AppendLine($"| {heading} | calls/step | ms/step | share | host ms/step |");
            text.AppendLine("|---|---|---|---|---|");
            foreach (OperationTime time in rows)
            {
                text.AppendLine(string.Format(invariant, "| {0} | {1:0.#} | {2:F2} | {3:P1} | {4:F2} |", time.Operation,
                    (double)time.Calls / steps, time.Milliseconds / steps, total > 0 ? time.Milliseconds / steps / total : 0,
                    time.HostMilliseconds / steps));
            }
        }

        Table("operation", ByOperation(times));
        text.AppendLine();
        Table("launch", times.Where(time => time.Operation.Contains(Separator, StringComparison.Ordinal)).Take(launches));
        text.Append(string.Format(invariant,
            "operations' device time {0:F1} ms/step of {1:F1} ms/step wall-clock (the rest: host work outside operations, or idle device)",
            total, wallMillisecondsPerStep));
        return text.ToString();
    }

    public void Dispose()
    {
        foreach (CudaEvent @event in events) @event.Dispose();
        events.Clear();
    }
}
