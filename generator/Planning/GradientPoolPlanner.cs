using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Where each parameter gradient lives when gradients are streamed (ZeRO-2 and up): a slot's gradient is live from
/// the backward step that first writes it until the step after which it is final — then it is reduced to its owners
/// and its memory reused. Slots with disjoint lifetimes share a small pool instead of a full-size gradient buffer.
/// <see cref="Offsets"/> is per slot (layout order); <see cref="FinalAfterStep"/> is the backward step after which
/// each slot's gradient is final.
/// </summary>
internal sealed record GradientPoolPlan(EquatableArray<long> Offsets, EquatableArray<int> FinalAfterStep, long PoolElements);

internal static class GradientPoolPlanner
{
    private const int AlignmentElements = 16;

    public static GradientPoolPlan Plan(ParameterLayoutPlan layout, EquatableArray<BackwardStep> backward, Ir.IrGraph graph)
    {
        var first = new Dictionary<int, int>();
        var last = new Dictionary<int, int>();
        for (int j = 0; j < backward.Count; j++)
        {
            foreach (int parameter in graph.Ops[backward[j].Op].Parameters)
            {
                if (!first.ContainsKey(parameter)) first[parameter] = j;
                last[parameter] = j;
            }
        }

        var slots = layout.Slots;
        var offsets = new long[slots.Count];
        var finalAfter = new int[slots.Count];
        var packer = new IntervalPacker();
        var order = Enumerable.Range(0, slots.Count)
            .OrderByDescending(i => slots[i].Length).ThenBy(i => i);
        foreach (int i in order)
        {
            int id = slots[i].Parameter.Id;
            int start = first.TryGetValue(id, out int s) ? s : 0;
            int end = last.TryGetValue(id, out int e) ? e : 0;
            finalAfter[i] = end;
            offsets[i] = packer.Place(Align(slots[i].Length), start, end);
        }
        long pool = packer.Extent;
        return new GradientPoolPlan(offsets.ToEquatableArray(), finalAfter.ToEquatableArray(), pool);
    }

    private static long Align(long elements) => (elements + AlignmentElements - 1) / AlignmentElements * AlignmentElements;
}
