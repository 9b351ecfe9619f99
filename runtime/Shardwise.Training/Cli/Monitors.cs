using System;
using System.IO;
using Shardwise.Training.Config;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Cli;

/// <summary>
/// What a trainer's rank 0 does with each report besides its line and metrics.csv, as the config asks: TensorBoard
/// scalars (tensorboard), one CSV per metric (csv_monitor), and the measured memory (memory_breakdown). Both trainers
/// (data parallel and pipelined) report through it.
/// </summary>
internal sealed class Monitors : IDisposable
{
    private readonly TensorBoardMonitor? _tensorboard;
    private readonly CsvMonitor? _csv;
    private readonly bool _memory;
    private readonly Func<(long Used, long Total)?> _deviceMemory;
    private readonly TextWriter _log;

    private Monitors(TensorBoardMonitor? tensorboard, CsvMonitor? csv, bool memory, Func<(long Used, long Total)?> deviceMemory, TextWriter log)
    {
        (_tensorboard, _csv, _memory, _deviceMemory, _log) = (tensorboard, csv, memory, deviceMemory, log);
    }

    /// <summary>Opens the monitors the config enables on rank 0 (elsewhere none) and says where they write.</summary>
    public static Monitors Open(DeepSpeedConfig config, string outputDirectory, bool rankZero, Func<(long Used, long Total)?> deviceMemory, TextWriter log)
    {
        var tensorboard = rankZero && config.TensorBoard.Enabled ? new TensorBoardMonitor(config.TensorBoard.Directory(outputDirectory)) : null;
        if (tensorboard is not null) log.WriteLine($"tensorboard: scalars every {config.StepsPerPrint} step(s) in {tensorboard.FilePath}");
        var csv = rankZero && config.CsvMonitor.Enabled ? new CsvMonitor(config.CsvMonitor.Directory(outputDirectory)) : null;
        if (csv is not null) log.WriteLine($"csv_monitor: one file per metric every {config.StepsPerPrint} step(s) in {csv.DirectoryPath}");
        return new Monitors(tensorboard, csv, rankZero && config.MemoryBreakdown, deviceMemory, log);
    }

    /// <summary>One report, at x = step × <paramref name="samplesPerStep"/> for the scalar monitors.</summary>
    public void Report(StepMetrics metrics, long samplesPerStep)
    {
        if (_memory) _log.WriteLine("memory (measured, rank 0): " + MeasuredMemory.Sample(_deviceMemory()).Describe());
        _tensorboard?.Append(metrics, samplesPerStep);
        _csv?.Append(metrics, samplesPerStep);
    }

    public void Dispose() => _tensorboard?.Dispose();
}
