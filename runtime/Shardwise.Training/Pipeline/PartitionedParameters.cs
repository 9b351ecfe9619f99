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

    /// <summary>
    /// Assembles one replica's full layout on member 0 of its model-parallel group a parameter at a time (a collective
    /// over the group): member 0 hands each whole parameter, in layout order, to <paramref name="write"/>; the others
    /// send their pieces of the parameters their stage holds first (a replicated one from tensor rank 0 only). Nobody
    /// holds more than the largest parameter besides its own local buffer, where <see cref="Gather"/> gives every member
    /// the full layout: the way checkpoints and final weights of models too large for one rank are written.
    /// </summary>
    public static void StreamToFirst(ICommunicator modelParallel, ModelPartition partition, ParameterLayout model, ReadOnlySpan<float> local,
        Action<ParameterSlot, ReadOnlySpan<float>>? write)
    {
        const int Tag = 0x5743; // one message stream per group and call; MPI keeps a sender's messages in order
        int t = partition.Tensor, members = partition.Pipeline * t, member = modelParallel.Rank;
        if (modelParallel.Size != members)
            throw new ArgumentException($"the model-parallel group has {modelParallel.Size} ranks, the partition {partition.Pipeline} × {t}");
        StagePlan mine = partition.Stages[member / t];
        if (local.Length != mine.Layout.TotalElements)
            throw new ArgumentException($"the local buffer has {local.Length} elements, stage {mine.Index}'s layout {mine.Layout.TotalElements}");
        if (member == 0 && write is null) throw new ArgumentNullException(nameof(write), "member 0 writes what it assembles");

        // Each model parameter's first holder: the stage that sends it.
        var holders = new Dictionary<string, (StagePlan Stage, StageParameter Parameter)>(StringComparer.Ordinal);
        foreach (StagePlan stage in partition.Stages)
        foreach (StageParameter parameter in stage.Parameters)
            if (parameter.FirstHolder) holders.TryAdd(parameter.Name, (stage, parameter));

        float[] whole = [], piece = [];
        foreach (ParameterSlot modelSlot in model.Slots)
        {
            if (!holders.TryGetValue(modelSlot.Name, out var holder))
                throw new ArgumentException($"no stage of the partition holds parameter '{modelSlot.Name}'");
            var (stage, parameter) = holder;
            ParameterSlot localSlot = stage.Layout.Slots[parameter.Slot];
            int senders = parameter.Split.Axis == SplitAxis.None ? 1 : t;
            if (member != 0)
            {
                int tensorRank = member % t;
                if (stage.Index == mine.Index && tensorRank < senders)
                    modelParallel.Send(local.Slice(checked((int)localSlot.Offset), checked((int)localSlot.Length)), 0, Tag);
                continue;
            }

            if (whole.Length < modelSlot.Length) whole = new float[modelSlot.Length];
            if (piece.Length < localSlot.Length) piece = new float[localSlot.Length];
            var full = whole.AsSpan(0, checked((int)modelSlot.Length));
            for (int tensorRank = 0; tensorRank < senders; tensorRank++)
            {
                int from = stage.Index * t + tensorRank;
                ReadOnlySpan<float> received;
                if (from == 0) received = local.Slice(checked((int)localSlot.Offset), checked((int)localSlot.Length));
                else
                {
                    var buffer = piece.AsSpan(0, checked((int)localSlot.Length));
                    modelParallel.Receive(buffer, from, Tag);
                    received = buffer;
                }
                if (senders == 1) received.CopyTo(full);
                else TensorSplitMapping.Insert(received, modelSlot.Shape, parameter.Split, tensorRank, t, full);
            }
            write!(modelSlot, full);
        }
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
