using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// The static ZeRO-3 schedule: when each parameter slot must be gathered and where it lives while it is. A slot is
/// resident in forward from the op that first uses it to the op that last does, and again in backward from the first
/// to the last backward step that uses it (gathered twice, as DeepSpeed does: 3Ψ of traffic per step with the
/// gradient reduction). Because the order of ops is fixed at build time, this replaces DeepSpeed's traced first step.
/// Backward times are positions on the checkpoint plan's backward timeline, so a checkpointed layer's parameters are
/// gathered (phase 1) at its recompute and stay resident through its backward: one gather serves both, and the
/// static gather order lists them where the program asks for them.
/// </summary>
/// <remarks>
/// Forward times are forward op indices; backward times (<see cref="BackwardFirst"/>, <see cref="BackwardLast"/>)
/// are positions on <see cref="CheckpointPlan.Timeline"/>, which equal backward step indices without checkpointing.
/// </remarks>
internal sealed record ParameterResidencyPlan(
    EquatableArray<int> ForwardFirst,
    EquatableArray<int> ForwardLast,
    EquatableArray<int> BackwardFirst,
    EquatableArray<int> BackwardLast,
    EquatableArray<long> ForwardOffsets,
    EquatableArray<long> BackwardOffsets,
    long PoolElements,
    EquatableArray<int> GatherOrderSlots,
    EquatableArray<int> GatherOrderPhases);

internal static class ParameterResidencyPlanner
{
    private const int AlignmentElements = 16;

    public static ParameterResidencyPlan Plan(IrGraph graph, ParameterLayoutPlan layout, CheckpointPlan checkpoints)
    {
        int slots = layout.Slots.Count, forwardSteps = graph.Ops.Count;
        var slotOf = new Dictionary<int, int>();
        for (int i = 0; i < slots; i++) slotOf[layout.Slots[i].Parameter.Id] = i;

        var forwardFirst = Filled(slots, -1);
        var forwardLast = Filled(slots, -1);
        for (int k = 0; k < forwardSteps; k++)
        {
            foreach (int parameter in graph.Ops[k].Parameters) Touch(forwardFirst, forwardLast, slotOf[parameter], k);
        }
        var backwardFirst = Filled(slots, -1);
        var backwardLast = Filled(slots, -1);
        var timeline = checkpoints.Timeline;
        for (int i = 0; i < timeline.Count; i++)
        {
            foreach (int parameter in graph.Ops[timeline[i].Op].Parameters) Touch(backwardFirst, backwardLast, slotOf[parameter], i);
        }

        // One timeline over forward ops then backward steps; every residency interval is a buffer to place.
        var intervals = new List<(int Slot, bool Backward, int Start, int End, long Size)>();
        for (int i = 0; i < slots; i++)
        {
            long size = Align(layout.Slots[i].Length);
            if (forwardFirst[i] >= 0) intervals.Add((i, false, forwardFirst[i], forwardLast[i], size));
            if (backwardFirst[i] >= 0) intervals.Add((i, true, forwardSteps + backwardFirst[i], forwardSteps + backwardLast[i], size));
        }

        var forwardOffsets = new long[slots];
        var backwardOffsets = new long[slots];
        var packer = new IntervalPacker();
        foreach (var interval in intervals.OrderByDescending(x => x.Size).ThenBy(x => x.Start).ThenBy(x => x.Slot))
        {
            long offset = packer.Place(interval.Size, interval.Start, interval.End);
            if (interval.Backward) backwardOffsets[interval.Slot] = offset;
            else forwardOffsets[interval.Slot] = offset;
        }
        long pool = packer.Extent;

        // The order in which the program will ask for slots (forward, then backward; within a step by slot), so the
        // runtime can prefetch the next ones before they are asked for.
        var order = intervals.OrderBy(x => x.Backward).ThenBy(x => x.Start).ThenBy(x => x.Slot).ToList();
        return new ParameterResidencyPlan(forwardFirst.ToEquatableArray(), forwardLast.ToEquatableArray(),
            backwardFirst.ToEquatableArray(), backwardLast.ToEquatableArray(),
            forwardOffsets.ToEquatableArray(), backwardOffsets.ToEquatableArray(), pool,
            order.Select(x => x.Slot).ToEquatableArray(), order.Select(x => x.Backward ? 1 : 0).ToEquatableArray());
    }

    private static void Touch(int[] first, int[] last, int slot, int time)
    {
        if (first[slot] < 0) first[slot] = time;
        last[slot] = time;
    }

    private static int[] Filled(int count, int value)
    {
        var array = new int[count];
        for (int i = 0; i < count; i++) array[i] = value;
        return array;
    }

    private static long Align(long elements) => (elements + AlignmentElements - 1) / AlignmentElements * AlignmentElements;
}
