using System;

namespace Shardwise.Training.Optim;

/// <summary>
/// Everything Adam needs to resume exactly: the step count (it drives bias correction) and the fp32
/// first and second moments, laid out like the flat parameter buffer they belong to.
/// </summary>
public sealed class AdamState
{
    public AdamState(int length)
        : this(0, new float[length], new float[length])
    {
    }

    public AdamState(long step, float[] expAvg, float[] expAvgSq)
    {
        ArgumentNullException.ThrowIfNull(expAvg);
        ArgumentNullException.ThrowIfNull(expAvgSq);
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (expAvg.Length != expAvgSq.Length)
        {
            throw new ArgumentException($"moment buffers differ in length: exp_avg {expAvg.Length}, exp_avg_sq {expAvgSq.Length}");
        }

        Step = step;
        ExpAvg = expAvg;
        ExpAvgSq = expAvgSq;
    }

    /// <summary>Optimizer steps taken so far (0 before the first).</summary>
    public long Step { get; internal set; }

    /// <summary>First moment m (DeepSpeed/torch name: exp_avg).</summary>
    public float[] ExpAvg { get; }

    /// <summary>Second moment v (exp_avg_sq).</summary>
    public float[] ExpAvgSq { get; }

    public int Length => ExpAvg.Length;
}
