using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Which ZeRO-3 gathers a skipped <c>[LayerDrop]</c> element makes unnecessary: for each parameter slot, the element
/// whose skip leaves it unread, or −1. A slot qualifies when every op that reads it is a branch op of that one element
/// whose forward call runs only while the element is kept (a LayerNorm that also computes the residual add before it
/// always runs, so its weights are always gathered); backward steps and checkpoint recomputes of branch ops are
/// guarded the same way. The runtime then skips both of the slot's gathers in a micro-batch that drops the element.
/// </summary>
internal static class LayerDropResidencyPlanner
{
    public static EquatableArray<int> Plan(IrGraph graph, ParameterLayoutPlan layout, LayerDropPlan layerDrop, EpiloguePlan epilogues)
    {
        var skippedWith = Enumerable.Repeat(-1, layout.Slots.Count).ToArray();
        if (layerDrop.IsEmpty) return skippedWith.ToEquatableArray();
        for (int slot = 0; slot < layout.Slots.Count; slot++)
        {
            int parameter = layout.Slots[slot].Parameter.Id, element = -1;
            bool guarded = true;
            for (int k = 0; k < graph.Ops.Count && guarded; k++)
            {
                if (!graph.Ops[k].Parameters.Contains(parameter)) continue;
                guarded = layerDrop.IsBranchOp(k) && epilogues.AddBeforeNorm(k) < 0 && (element < 0 || element == layerDrop.Owner[k]);
                element = layerDrop.Owner[k];
            }
            if (guarded) skippedWith[slot] = element;
        }
        return skippedWith.ToEquatableArray();
    }
}
