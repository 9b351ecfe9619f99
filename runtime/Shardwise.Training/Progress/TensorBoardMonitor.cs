using System;
using System.IO;

namespace Shardwise.Training.Progress;

/// <summary>
/// DeepSpeed's tensorboard monitor for the trainer (rank 0): each reported step's <see cref="MonitorScalars"/> as
/// TensorBoard scalars with the samples seen so far as the x axis, in <c>output_path/job_name/</c>.
/// </summary>
public sealed class TensorBoardMonitor : IDisposable
{
    private readonly TensorBoardEventWriter _writer;
    private readonly Func<DateTimeOffset> _clock;

    public TensorBoardMonitor(string directory, Func<DateTimeOffset>? clock = null)
    {
        _clock = clock ?? (() => DateTimeOffset.UtcNow);
        _writer = TensorBoardEventWriter.Create(directory, _clock());
    }

    public string FilePath => _writer.Path;

    /// <summary>Writes <paramref name="metrics"/> at x = step × <paramref name="samplesPerStep"/>.</summary>
    public void Append(StepMetrics metrics, long samplesPerStep)
    {
        var now = _clock();
        foreach (var (tag, value) in MonitorScalars.Of(metrics)) _writer.WriteScalar(tag, metrics.Step * samplesPerStep, (float)value, now);
    }

    public void Dispose() => _writer.Dispose();
}
