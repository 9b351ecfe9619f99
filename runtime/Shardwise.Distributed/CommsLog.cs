using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;

namespace Shardwise.Distributed;

/// <summary>One communicator call a <see cref="LoggingCommunicator"/> timed on this rank.</summary>
/// <param name="Operation">DeepSpeed's name for it: all_reduce, reduce_scatter, all_gather, broadcast, send, recv, barrier.</param>
/// <param name="MessageBytes">The tensor the call moves, as DeepSpeed's logger sizes it (all_gather: the gathered output; reduce_scatter: the input).</param>
public readonly record struct CommsRecord(string Operation, long MessageBytes, double Milliseconds, int GroupSize);

/// <summary>
/// DeepSpeed's comms_logger for one rank: every logged call's operation, message size and latency, and the summary
/// DeepSpeed's <c>log_summary</c> prints: per operation and message size, the count, total and average latency, the
/// algorithm bandwidth (size / latency) and the bus bandwidth (algorithm bandwidth × the collective's traffic factor:
/// 2(n−1)/n for all_reduce, (n−1)/n for all_gather and reduce_scatter, 1 otherwise), in Gbps.
/// </summary>
public sealed class CommsLog
{
    /// <summary>The operations a <see cref="LoggingCommunicator"/> can log, DeepSpeed's names.</summary>
    public static IReadOnlyList<string> Operations { get; } = ["all_reduce", "reduce_scatter", "all_gather", "broadcast", "send", "recv", "barrier"];

    private readonly List<CommsRecord> _records = [];
    private readonly HashSet<string>? _only;
    private readonly TextWriter? _verbose;

    /// <param name="onlyOperations">The operations to log (DeepSpeed's prof_ops); null for all of them (prof_all).</param>
    /// <param name="verbose">Where each call is printed as it completes (DeepSpeed's verbose), or null.</param>
    public CommsLog(IEnumerable<string>? onlyOperations = null, TextWriter? verbose = null)
    {
        _only = onlyOperations is null ? null : new HashSet<string>(onlyOperations, StringComparer.Ordinal);
        _verbose = verbose;
    }

    public IReadOnlyList<CommsRecord> Records => _records;

    public bool Wants(string operation) => _only is null || _only.Contains(operation);

    public void Add(CommsRecord record)
    {
        _records.Add(record);
        _verbose?.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"comm op: {record.Operation} | time (ms): {record.Milliseconds:0.000} | msg size: {Size(record.MessageBytes)} | algbw (Gbps): {AlgorithmGbps(record):0.00} | busbw (Gbps): {BusGbps(record):0.00}"));
    }

    /// <summary>The bus bandwidth over the algorithm bandwidth for <paramref name="operation"/> on <paramref name="ranks"/> ranks.</summary>
    public static double BusFactor(string operation, int ranks) => operation switch
    {
        "all_reduce" => ranks > 1 ? 2.0 * (ranks - 1) / ranks : 0,
        "all_gather" or "reduce_scatter" => ranks > 1 ? (double)(ranks - 1) / ranks : 0,
        "barrier" => 0,
        _ => 1,
    };

    /// <summary>The summary table, operations in first-call order and sizes ascending; "" when nothing was logged.</summary>
    public string Summary()
    {
        if (_records.Count == 0) return "";
        var text = new StringBuilder();
        text.Append(string.Create(CultureInfo.InvariantCulture,
            $"{"Comm. Op",-16}{"Message Size",-16}{"Count",-10}{"Total Latency(ms)",-20}{"Avg Latency(ms)",-18}{"tput_avg (Gbps)",-18}{"busbw_avg (Gbps)"}\n"));
        foreach (var operation in _records.Select(r => r.Operation).Distinct())
        {
            text.Append(operation).Append('\n');
            foreach (var group in _records.Where(r => r.Operation == operation).GroupBy(r => r.MessageBytes).OrderBy(g => g.Key))
            {
                double total = group.Sum(r => r.Milliseconds);
                text.Append(string.Create(CultureInfo.InvariantCulture,
                    $"{"",-16}{Size(group.Key),-16}{group.Count(),-10}{total,-20:0.00}{total / group.Count(),-18:0.000}{group.Average(AlgorithmGbps),-18:0.00}{group.Average(BusGbps):0.00}\n"));
            }
        }
        return text.ToString().TrimEnd('\n');
    }

    private static double AlgorithmGbps(CommsRecord record) => record.Milliseconds > 0 ? record.MessageBytes * 8.0 / 1e9 / (record.Milliseconds / 1000) : 0;

    private static double BusGbps(CommsRecord record) => AlgorithmGbps(record) * BusFactor(record.Operation, record.GroupSize);

    /// <summary>32.0 KB, 1.50 MB: DeepSpeed's sizes (powers of 1024).</summary>
    public static string Size(long bytes)
    {
        string[] units = ["B", "KB", "MB", "GB", "TB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B") : string.Create(CultureInfo.InvariantCulture, $"{value:0.00} {units[unit]}");
    }
}
