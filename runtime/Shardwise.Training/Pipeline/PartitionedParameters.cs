using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Distributed;
using Shardwise.Plans;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// Moves parameters between the model's full flat layout (<see cref="ILanguageModelDefinition.ParameterLayout"/>, what
/// a single process trains and checkpoints hold) and one stage and tensor rank's local flat layout, slot by slot through
/// <see cref="StagePlan.Parameters"/> and <see cref="TensorSplitMapping"/>. Works on any per-parameter buffer: weights,
/// gradients, Adam moments.
/// </summary>
public static class PartitionedParameters
{
    /// <summary>Fills <paramref name="local"/> (the stage's layout) with this stage and tensor rank's part of <paramref name="full"/>.</summary>
    public static void Extract(ParameterLayout model, ReadOnlySpan<float> full, StagePlan stage, int tensorRank, Span<float> local)
    {
        CheckLengths(model, full.Length, stage, local.Length);
        local.Clear();
        foreach (var (parameter, localSlot, modelSlot) in Pairs(model, stage))
        {
            TensorSplitMapping.Extract(full.Slice(checked((int)modelSlot.Offset), checked((int)modelSlot.Length)), modelSlot.Shape,
                parameter.Split, tensorRank, stage.Tensor, local.Slice(checked((int)localSlot.Offset), checked((int)localSlot.Length)));
        }
    }

    /// <summary>
    /// Fills <paramref name="local"/> (the stage's layout) with this stage and tensor rank's part of a full-layout buffer
    /// that is read a parameter at a time through <paramref name="readModelSlot"/>: a checkpoint's state, which then never
    /// has to be in memory whole (only the largest parameter is).
    /// </summary>
    public static void Extract(ParameterLayout model, Action<ParameterSlot, Span<float>> readModelSlot, StagePlan stage, int tensorRank, Span<float> local)
    {
        if (local.Length != stage.Layout.TotalElements)
            throw new ArgumentException($"the local buffer has {local.Length} elements, stage {stage.Index}'s layout {stage.Layout.TotalElements}");
        local.Clear();
        float[] buffer = [];
        foreach (var (parameter, localSlot, modelSlot) in Pairs(model, stage))
        {
            if (buffer.Length < modelSlot.Length) buffer = new float[modelSlot.Length];
            var full = buffer.AsSpan(0, checked((int)modelSlot.Length));
            readModelSlot(modelSlot, full);
            TensorSplitMapping.Extract(full, modelSlot.Shape, parameter.Split, tensorRank, stage.Tensor,
                local.Slice(checked((int)localSlot.Offset), checked((int)localSlot.Length)));
        }
    }

    /// <summary>Writes this stage and tensor rank's <paramref name="local"/> values into their places in <paramref name="full"/>.</summary>
    public static void Insert(ParameterLayout model, ReadOnlySpan<float> local, StagePlan stage, int tensorRank, Span<float> full)
    {
        CheckLengths(model, full.Length, stage, local.Length);
        foreach (var (parameter, localSlot, modelSlot) in Pairs(model, stage))
        {
            TensorSplitMapping.Insert(local.Slice(checked((int)localSlot.Offset), checked((int)localSlot.Length)), modelSlot.Shape,
                parameter.Split, tensorRank, stage.Tensor, full.Slice(checked((int)modelSlot.Offset), checked((int)modelSlot.Length)));
        }
    }

    /// <summary>
    /// Assembles the full layout from every rank of one model replica (a collective over its model-parallel group, whose
    /// rank r is stage r / t, tensor rank r mod t). Every member gets the result; tied parameters are equal on their
    /// holders, so it does not matter which copy lands last.
    /// </summary>
    public static float[] Gather(ICommunicator modelParallel, ModelPartition partition, ParameterLayout model, ReadOnlySpan<float> local)
    {
        int members = partition.Pipeline * partition.Tensor;
        if (modelParallel.Size != members)
            throw new ArgumentException($"the model-parallel group has {modelParallel.Size} ranks, the partition {partition.Pipeline} × {partition.Tensor}");
        int padded = checked((int)partition.Stages.Max(s => s.Layout.TotalElements));
        var mine = new float[padded];
        local.CopyTo(mine);
        var all = new float[padded * members];
        modelParallel.AllGather(mine, all);
        var full = new float[model.TotalElements];
        for (int member = 0; member < members; member++)
        {
            StagePlan stage = partition.Stages[member / partition.Tensor];
            Insert(model, all.AsSpan(member * padded, checked((int)stage.Layout.TotalElements)), stage, member % partition.Tensor, full);
        }
        return full;
    }

    private static IEnumerable<(StageParameter Parameter, ParameterSlot Local, ParameterSlot Model)> Pairs(ParameterLayout model, StagePlan stage)
    {
        var byName = model.Slots.ToDictionary(slot => slot.Name, StringComparer.Ordinal);
        foreach (StageParameter parameter in stage.Parameters)
        {
            if (!byName.TryGetValue(parameter.Name, out ParameterSlot? modelSlot))
                throw new ArgumentException($"stage {stage.Index} holds parameter '{parameter.Name}', which the model's ParameterLayout does not have");
            yield return (parameter, stage.Layout.Slots[parameter.Slot], modelSlot);
        }
    }

    private static void CheckLengths(ParameterLayout model, int fullLength, StagePlan stage, int localLength)
    {
        if (fullLength != model.TotalElements)
            throw new ArgumentException($"the full buffer has {fullLength} elements, the model's layout {model.TotalElements}");
        if (localLength != stage.Layout.TotalElements)
            throw new ArgumentException($"the local buffer has {localLength} elements, stage {stage.Index}'s layout {stage.Layout.TotalElements}");
    }
}
