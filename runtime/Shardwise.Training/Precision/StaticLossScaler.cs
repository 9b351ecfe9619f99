namespace Shardwise.Training.Precision;

/// <summary>
/// A fixed scale: fp16 with "loss_scale" &gt; 0, or 1.0 for bf16 and fp32 (which need no scaling).
/// Overflowed steps are still skipped and counted.
/// </summary>
public sealed class StaticLossScaler(double scale) : ILossScaler
{
    public static StaticLossScaler Unscaled => new(1.0);

    public double Scale { get; } = scale;

    public bool IsDynamic => false;

    public long SkippedSteps { get; private set; }

    /// <summary>Restores the skipped-step count from a checkpoint (the scale itself never changes).</summary>
    public void RestoreSkippedSteps(long skippedSteps) => SkippedSteps = skippedSteps;

    public bool Update(bool overflow)
    {
        if (overflow)
        {
            SkippedSteps++;
        }

        return overflow;
    }
}
