using System;

namespace Shardwise.Training.Precision;

/// <summary>
/// DeepSpeed's DynamicLossScaler.update_scale (runtime/fp16/loss_scaler.py), line for line:
/// <code>
/// if overflow:
///     if delayed_shift == 1 or cur_hysteresis == 1:
///         if cur_scale == min_scale and raise_error: raise
///         cur_scale = max(cur_scale / factor, min_scale)
///     else:
///         cur_hysteresis -= 1              # scale kept, step still skipped
///     last_overflow_iter = cur_iter
/// else:
///     if consecutive_hysteresis: cur_hysteresis = delayed_shift
///     if (cur_iter - last_overflow_iter) % scale_window == 0:
///         if not consecutive_hysteresis: cur_hysteresis = delayed_shift
///         cur_scale *= factor
/// cur_iter += 1
/// </code>
/// "delayed_shift" is the config's hysteresis: the scale halves only on the h-th overflow since the
/// hysteresis was last refilled. Without consecutive_hysteresis it is refilled only when the scale grows.
/// Note the window counts from the last overflow, so the first growth comes at iteration window − 1.
/// </summary>
public sealed class DynamicLossScaler : ILossScaler
{
    /// <param name="initialScale">DeepSpeed constructor default 2^32; configs map 2^initial_scale_power.</param>
    public DynamicLossScaler(
        double initialScale = 4294967296.0,
        double scaleFactor = 2.0,
        int scaleWindow = 1000,
        double minScale = 1.0,
        int delayedShift = 1,
        bool consecutiveHysteresis = false,
        bool raiseErrorAtMinScale = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(initialScale, 0);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(scaleFactor, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(scaleWindow, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(minScale, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(delayedShift, 1);
        Scale = initialScale;
        ScaleFactor = scaleFactor;
        ScaleWindow = scaleWindow;
        MinScale = minScale;
        DelayedShift = delayedShift;
        ConsecutiveHysteresis = consecutiveHysteresis;
        RaiseErrorAtMinScale = raiseErrorAtMinScale;
        CurrentHysteresis = delayedShift;
        LastOverflowIteration = -1;
    }

    public double Scale { get; private set; }

    public bool IsDynamic => true;

    public double ScaleFactor { get; }

    public int ScaleWindow { get; }

    public double MinScale { get; }

    /// <summary>The config's "hysteresis".</summary>
    public int DelayedShift { get; }

    public bool ConsecutiveHysteresis { get; }

    public bool RaiseErrorAtMinScale { get; }

    /// <summary>Overflows still tolerated before the next one halves the scale.</summary>
    public int CurrentHysteresis { get; private set; }

    public long CurrentIteration { get; private set; }

    public long LastOverflowIteration { get; private set; }

    public long SkippedSteps { get; private set; }

    /// <exception cref="LossScaleAtMinimumException">Overflow with the scale already at the minimum (and raising enabled).</exception>
    public bool Update(bool overflow)
    {
        if (overflow)
        {
            if (DelayedShift == 1 || CurrentHysteresis == 1)
            {
                if (Scale == MinScale && RaiseErrorAtMinScale)
                {
                    throw new LossScaleAtMinimumException(Scale, MinScale, CurrentIteration);
                }

                Scale = Math.Max(Scale / ScaleFactor, MinScale);
            }
            else
            {
                CurrentHysteresis--;
            }

            LastOverflowIteration = CurrentIteration;
            SkippedSteps++;
        }
        else
        {
            if (ConsecutiveHysteresis)
            {
                CurrentHysteresis = DelayedShift;
            }

            if ((CurrentIteration - LastOverflowIteration) % ScaleWindow == 0)
            {
                if (!ConsecutiveHysteresis)
                {
                    CurrentHysteresis = DelayedShift;
                }

                Scale *= ScaleFactor;
            }
        }

        CurrentIteration++;
        return overflow;
    }

    public LossScalerState CaptureState() =>
        new(Scale, CurrentIteration, LastOverflowIteration, CurrentHysteresis, SkippedSteps);

    public void RestoreState(LossScalerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        Scale = state.Scale;
        CurrentIteration = state.CurrentIteration;
        LastOverflowIteration = state.LastOverflowIteration;
        CurrentHysteresis = state.CurrentHysteresis;
        SkippedSteps = state.SkippedSteps;
    }
}
