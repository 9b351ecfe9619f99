using System.Collections.Generic;

namespace Shardwise.Training.Progress;

/// <summary>
/// The scalars DeepSpeed's monitors (tensorboard, csv_monitor) receive for one reported step, under its tags, with the
/// samples seen so far as their x value. Values not measured at that step (validation, accuracy, the wall-clock
/// breakdown) are left out rather than written as zero.
/// </summary>
public static class MonitorScalars
{
    public const string Prefix = "Train/Samples/";

    public static IEnumerable<(string Tag, double Value)> Of(StepMetrics metrics)
    {
        yield return (Prefix + "train_loss", metrics.Loss);
        yield return (Prefix + "lr", metrics.LearningRate);
        yield return (Prefix + "loss_scale", metrics.LossScale);
        yield return (Prefix + "grad_norm", metrics.GradientNorm);
        yield return (Prefix + "tokens_per_second", metrics.TokensPerSecond);
        if (metrics.ValidationLoss is { } validation) yield return (Prefix + "val_loss", validation);
        if (metrics.Accuracy is { } accuracy) yield return (Prefix + "accuracy", accuracy);
        if (metrics.WallClock is { } clock)
        {
            yield return (Prefix + "forward_ms", clock.ForwardMs);
            yield return (Prefix + "backward_ms", clock.BackwardMs);
            yield return (Prefix + "step_ms", clock.StepMs);
        }
    }
}
