using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Finds the residual Add → LayerNorm pairs of <see cref="EpiloguePlan.AddLayerNorm"/>: entry k is the Add op that
/// LayerNorm op k computes with it (<c>Ops.AddLayerNorm</c>, one pass that writes the sum and normalises it), −1
/// otherwise; that Add then emits nothing. A pre-norm transformer has one per residual add (each is read by the next
/// block's norm or the final norm), which saves the add kernel's pass over the residual stream and the LayerNorm's
/// re-read of it.
/// <para>
/// The fused call runs at the LayerNorm's step, so the LayerNorm's parameters are gathered (ZeRO-3) where they already
/// are, and the Add's operands stay live one step longer (<see cref="ActivationPlanner"/> plans them so). A pair fuses
/// when:
/// <list type="bullet">
/// <item>the LayerNorm comes right after the Add in forward order and normalises its output, so nothing could read
/// the sum, or write over an operand, between the two;</item>
/// <item>the sum is not the program's output (as with a Linear → GeLU pair, the value the caller reads is left to the
/// plain op that makes it);</item>
/// <item>both ops re-run for the same checkpoint segment or neither does, so a recompute writes the sum and the norm
/// only where the unfused program would (a block boundary under <c>[Checkpoint]</c> keeps its Add).</item>
/// </list>
/// The sum stays a buffer of its own (the residual stream: the next add and the LayerNorm's backward read it) and the
/// backward program is unchanged: the CPU backend runs the fused call as Add then LayerNorm, bitwise.
/// </para>
/// </summary>
internal static class ResidualNormFusionPlanner
{
    public static EquatableArray<int> Plan(IrGraph graph, CheckpointPlan checkpoints)
    {
        var recomputedIn = checkpoints.RecomputingSegments(graph.Ops.Count);

        var fused = Enumerable.Repeat(-1, graph.Ops.Count).ToArray();
        for (int k = 1; k < graph.Ops.Count; k++)
        {
            var norm = graph.Ops[k];
            var add = graph.Ops[k - 1];
            if (norm.Kind != OpKind.LayerNorm || add.Kind != OpKind.Add) continue;
            int sum = add.Outputs[0];
            if (norm.Inputs[0] != sum || sum == graph.Output) continue;
            if (recomputedIn[k - 1] != recomputedIn[k]) continue;
            fused[k] = k - 1;
        }
        return fused.ToEquatableArray();
    }
}
