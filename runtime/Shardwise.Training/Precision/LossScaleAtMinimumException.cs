using System;

namespace Shardwise.Training.Precision;

/// <summary>
/// fp16 training overflowed while the loss scale was already at min_loss_scale: the run cannot make
/// progress (DeepSpeed: "Current loss scale already at minimum - cannot decrease scale anymore").
/// </summary>
public sealed class LossScaleAtMinimumException(double scale, double minScale, long iteration)
    : Exception(
        $"fp16 gradients overflowed at iteration {iteration} while the loss scale was already at its minimum ({scale}; "
        + $"min_loss_scale = {minScale}), so the step cannot be retried with a smaller scale. The model is diverging or "
        + "its values exceed fp16's range: lower the learning rate, enable gradient_clipping, lower min_loss_scale, or train in bf16.")
{
    public double Scale { get; } = scale;

    public double MinScale { get; } = minScale;

    public long Iteration { get; } = iteration;
}
