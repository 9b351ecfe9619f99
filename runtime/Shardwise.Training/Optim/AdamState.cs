using System;

namespace Shardwise.Training.Optim;

/// <summary>
/// Everything Adam needs to resume exactly: the step count (it drives bias correction) and the fp32
/// first and second moments, laid out like the flat parameter buffer they belong to. Made with a length, the moments
/// are allocated (zeroed) on first use: when a backend keeps them (the fused step, <see cref="Shardwise.Ops.IFusedOptimizerOps"/>)
/// the host copies exist only once a checkpoint reads them (2 × 4 bytes per parameter: about 1 GB for GPT-2 124M).
/// </summary>
public sealed class AdamState
{
    private float[]? _expAvg;
    private float[]? _expAvgSq;

    public AdamState(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
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
        _expAvg = expAvg;
        _expAvgSq = expAvgSq;
        Length = expAvg.Length;
    }

    /// <summary>Optimizer steps taken so far (0 before the first).</summary>
    public long Step { get; internal set; }

    /// <summary>First moment m (DeepSpeed/torch name: exp_avg); allocated, zeroed, on first use.</summary>
    public float[] ExpAvg => _expAvg ??= new float[Length];

    /// <summary>Second moment v (exp_avg_sq); allocated, zeroed, on first use.</summary>
    public float[] ExpAvgSq => _expAvgSq ??= new float[Length];

    /// <summary>True once the host moment arrays exist (see the class comment).</summary>
    public bool MomentsAllocated => _expAvg is not null || _expAvgSq is not null;

    public int Length { get; }
}
