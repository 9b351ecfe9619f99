using System.Collections.Generic;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// When each parameter gradient becomes final during the backward pass. Because the layout follows execution
/// order and backward runs in reverse, gradients finish from the end of the flat buffer towards its start; after
/// backward step j every gradient at an offset ≥ <c>ReadyFrom[j]</c> is final. Data parallelism and ZeRO use this to
/// reduce buckets while backward is still running (DeepSpeed's overlap_comm), from a static schedule.
/// A tied weight (used early in forward and again at the end) holds the boundary back until its last contribution.
/// </summary>
internal static class GradientReadinessPlanner
{
    /// <summary>Per backward step: the new ready-from offset, or -1 when the step finishes no further gradient.</summary>
    public static EquatableArray<long> Plan(ParameterLayoutPlan layout, EquatableArray<BackwardStep> backward, Ir.IrGraph graph)
    {
        var lastWrite = new Dictionary<int, int>();
        for (int j = 0; j < backward.Count; j++)
        {
            foreach (int parameter in graph.Ops[backward[j].Op].Parameters) lastWrite[parameter] = j;
        }

        var result = new List<long>();
        int finalTail = 0; // how many slots at the end of the layout are final
        long readyFrom = layout.TotalElements;
        for (int j = 0; j < backward.Count; j++)
        {
            while (finalTail < layout.Slots.Count)
            {
                var slot = layout.Slots[layout.Slots.Count - 1 - finalTail];
                if (!lastWrite.TryGetValue(slot.Parameter.Id, out int last) || last > j) break;
                finalTail++;
            }
            long now = finalTail == layout.Slots.Count ? 0 : finalTail == 0 ? layout.TotalElements : layout.Slots[layout.Slots.Count - finalTail].Offset;
            result.Add(now < readyFrom ? now : -1);
            if (now < readyFrom) readyFrom = now;
        }
        return result.ToEquatableArray();
    }
}
