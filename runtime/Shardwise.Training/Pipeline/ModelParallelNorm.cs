using System;
using System.Collections.Generic;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Training.Engine;
using Shardwise.Training.Optim;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// The engine's norm and overflow hook for one stage and tensor rank: sums of squares count each model parameter once
/// across the replica — a tied parameter only on its first holder stage (<see cref="StageParameter.FirstHolder"/>), a
/// tensor-replicated one (LayerNorm, a row-parallel bias) only on tensor rank 0 — and both scalars are reduced over
/// the model-parallel group. Without this a pipeline would clip by its own stage's norm, and the stages would disagree.
/// </summary>
public sealed class ModelParallelNorm : IModelParallelReduction
{
    private readonly (long Start, long End)[] _counted; // layout ranges this rank counts, ascending
    private readonly ICommunicator _modelParallel;

    public ModelParallelNorm(StagePlan stage, int tensorRank, ICommunicator modelParallel)
    {
        _modelParallel = modelParallel;
        var counted = new List<(long, long)>();
        foreach (StageParameter parameter in stage.Parameters)
        {
            if (!parameter.FirstHolder) continue;
            if (parameter.Split.Axis == SplitAxis.None && tensorRank != 0) continue;
            ParameterSlot slot = stage.Layout.Slots[parameter.Slot];
            counted.Add((slot.Offset, slot.Offset + slot.Length));
        }
        counted.Sort();
        _counted = counted.ToArray();
    }

    public double SumOfSquares(ReadOnlySpan<float> gradients, long layoutOffset)
    {
        long end = layoutOffset + gradients.Length;
        double sum = 0;
        foreach (var (start, stop) in _counted)
        {
            long from = Math.Max(start, layoutOffset), to = Math.Min(stop, end);
            if (from < to) sum += GradientClipping.SumOfSquares(gradients.Slice((int)(from - layoutOffset), (int)(to - from)));
        }
        return sum;
    }

    public double Sum(double local) => RankAgreement.Sum(_modelParallel, local);

    public bool Any(bool local) => RankAgreement.Any(_modelParallel, local);
}
