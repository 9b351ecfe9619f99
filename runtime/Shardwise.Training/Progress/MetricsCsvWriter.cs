using System;
using System.Globalization;
using System.IO;
using System.Text;

namespace Shardwise.Training.Progress;

/// <summary>
/// Appends one CSV row per reported step, for plotting and comparing runs later. Opening an existing file (a resumed
/// run) appends below it without a second header. Each row is flushed to the operating system as soon as it is
/// written, so a crashed or killed run keeps every row it reported. Numbers use the invariant culture and round-trip
/// precision; a value that was not measured at that step is an empty cell.
/// </summary>
public sealed class MetricsCsvWriter : IDisposable
{
    /// <summary>The header line, column names in row order. Bytes are raw counts, times are milliseconds.</summary>
    public const string Header =
        "step,total_steps,loss,val_loss,accuracy,learning_rate,loss_scale,skipped_steps,tokens_per_second,ms_per_step," +
        "grad_norm,params_bytes,grads_bytes,master_bytes,optimizer_bytes,activation_bytes,buffer_bytes," +
        "forward_ms,backward_ms,step_ms";

    private readonly StreamWriter _writer;
    private bool _disposed;

    /// <exception cref="InvalidDataException">
    /// The file exists with a different header: appending would put values under the wrong column names.
    /// </exception>
    public MetricsCsvWriter(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
        (bool hasContent, bool endsWithNewline) = Inspect(path);

        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
        _writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)) { NewLine = "\n" };
        if (!hasContent)
            _writer.WriteLine(Header);
        else if (!endsWithNewline)
            _writer.WriteLine(); // A crash mid-row left a torn line; start ours on a fresh one rather than joining it.
        _writer.Flush();
    }

    public string Path { get; }

    public void Append(StepMetrics m)
    {
        ArgumentNullException.ThrowIfNull(m);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var row = new StringBuilder(256);
        row.Append(Cell(m.Step)).Append(',').Append(Cell(m.TotalSteps)).Append(',')
            .Append(Cell(m.Loss)).Append(',').Append(Cell(m.ValidationLoss)).Append(',').Append(Cell(m.Accuracy)).Append(',')
            .Append(Cell(m.LearningRate)).Append(',').Append(Cell(m.LossScale)).Append(',').Append(Cell(m.SkippedSteps)).Append(',')
            .Append(Cell(m.TokensPerSecond)).Append(',').Append(Cell(m.MillisecondsPerStep)).Append(',').Append(Cell(m.GradientNorm)).Append(',')
            .Append(Cell(m.Memory.ParametersBytes)).Append(',').Append(Cell(m.Memory.GradientsBytes)).Append(',')
            .Append(Cell(m.Memory.MasterBytes)).Append(',').Append(Cell(m.Memory.OptimizerBytes)).Append(',')
            .Append(Cell(m.Memory.ActivationBytes)).Append(',').Append(Cell(m.Memory.BufferBytes)).Append(',')
            .Append(Cell(m.WallClock?.ForwardMs)).Append(',').Append(Cell(m.WallClock?.BackwardMs)).Append(',')
            .Append(Cell(m.WallClock?.StepMs));
        _writer.WriteLine(row);
        _writer.Flush();
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _writer.Dispose();
    }

    // "R"-equivalent shortest round-trip text, so a value read back is bit-identical to the one logged.
    private static string Cell(double value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Cell(double? value) => value is { } v ? Cell(v) : "";

    private static string Cell(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static (bool HasContent, bool EndsWithNewline) Inspect(string path)
    {
        if (!File.Exists(path))
            return (false, true);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        if (stream.Length == 0)
            return (false, true);
        string? firstLine;
        using (var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, leaveOpen: true))
            firstLine = reader.ReadLine();
        if (firstLine != Header)
            throw new InvalidDataException(
                $"'{path}' already exists with a different header; appending would misalign columns. " +
                $"Expected: {Header}; found: {firstLine}");
        stream.Seek(-1, SeekOrigin.End);
        return (true, stream.ReadByte() == '\n');
    }
}
