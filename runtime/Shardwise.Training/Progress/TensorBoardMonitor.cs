using System;
using System.IO;

namespace Shardwise.Training.Progress;

/// <summary>
/// DeepSpeed's tensorboard monitor for the trainer (rank 0): each reported step's metrics as scalars under DeepSpeed's
/// tags (<c>Train/Samples/train_loss</c>, <c>Train/Samples/lr</c>, <c>Train/Samples/loss_scale</c>, …) with the
/// samples seen so far as the x axis, in <c>output_path/job_name/</c>.
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
        long samples = metrics.Step * samplesPerStep;
        var now = _clock();
        void Scalar(string name, double value) => _writer.WriteScalar("Train/Samples/" + name, samples, (float)value, now);
        Scalar("train_loss", metrics.Loss);
        Scalar("lr", metrics.LearningRate);
        Scalar("loss_scale", metrics.LossScale);
        Scalar("grad_norm", metrics.GradientNorm);
        Scalar("tokens_per_second", metrics.TokensPerSecond);
        if (metrics.ValidationLoss is { } validation) Scalar("val_loss", validation);
        if (metrics.Accuracy is { } accuracy) Scalar("accuracy", accuracy);
        if (metrics.WallClock is { } clock)
        {
            Scalar("forward_ms", clock.ForwardMs);
            Scalar("backward_ms", clock.BackwardMs);
            Scalar("step_ms", clock.StepMs);
        }
    }

    public void Dispose() => _writer.Dispose();
}
