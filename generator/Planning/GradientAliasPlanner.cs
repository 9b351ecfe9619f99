using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Activation gradients that share one buffer instead of being copied. The backward of a residual <c>y = a + b</c>
/// hands dy unchanged to both inputs; where that is the first gradient to reach an input, the input's gradient can
/// simply be d(y)'s buffer, so no <c>AddBackward</c> copy runs and a transformer's residual stream keeps one gradient
/// buffer from the loss down to the embedding.
/// <para>
/// <see cref="SharesGradientOf"/>[v] is the value whose gradient buffer v's gradient uses (followed to the end of a
/// chain of residual adds), −1 for a gradient of its own. <see cref="ElidedWrites"/>[step] has bit i set where input
/// i's gradient write of that backward step is such an alias (its copy is not emitted).
/// </para>
/// </summary>
internal sealed record GradientAliasPlan(EquatableArray<int> SharesGradientOf, EquatableArray<int> ElidedWrites)
{
    /// <summary>The value whose gradient buffer holds <paramref name="value"/>'s gradient (itself when not aliased).</summary>
    public int GradientOwner(int value) => value >= 0 && value < SharesGradientOf.Count && SharesGradientOf[value] >= 0 ? SharesGradientOf[value] : value;

    /// <summary>Whether input <paramref name="input"/>'s gradient write of backward step <paramref name="step"/> is an alias, not a copy.</summary>
    public bool IsElided(int step, int input) => (ElidedWrites[step] & (1 << input)) != 0;

    /// <summary>The number of copies the aliases save per step.</summary>
    public int Count => SharesGradientOf.Count(v => v >= 0);
}

/// <summary>
/// Finds the aliases of <see cref="GradientAliasPlan"/>, walking the backward steps from the loss down, for the step of
/// each <see cref="OpKind.Add"/> <c>y = a + b</c> with a ≠ b and y not the program's output (whose gradient the caller
/// owns):
/// <list type="bullet">
/// <item>the first input whose write overwrites (the first gradient to reach it, usually the residual stream) takes
/// d(y)'s buffer. Sound because d(y) is read by this step only (y has one producer; every other write into d(y)
/// happened earlier in the backward pass) and gradients are never recomputed; later gradients of the input add into
/// the buffer as they would into a copy;</item>
/// <item>the other input (the branch) takes it too when its write also overwrites, nothing but this add reads it (so
/// nothing else ever writes its gradient), and its producer's backward step is the very next step on the timeline
/// and writes nothing into the shared buffer: it then reads dy there before anything else changes the buffer.</item>
/// </list>
/// The branch of a <c>[LayerDrop]</c> element's residual add never shares: a kept branch's gradient is d(y) scaled by
/// 1/keep, so it needs its own buffer (<see cref="LayerDropPlan"/>).
/// </summary>
internal static class GradientAliasPlanner
{
    public static GradientAliasPlan Plan(IrGraph graph, EquatableArray<BackwardStep> backward, CheckpointPlan checkpoints, EpiloguePlan epilogues,
        LayerDropPlan layerDrop)
    {
        var shares = Enumerable.Repeat(-1, graph.Values.Count).ToArray();
        var elided = new int[backward.Count];
        var soleReader = graph.SoleReaders();
        var producer = graph.Producers();
        var order = checkpoints.Timeline.Where(e => !e.IsRecompute).Select(e => e.Step).ToList(); // backward steps in run order
        int Owner(int value) => shares[value] >= 0 ? shares[value] : value;

        for (int i = 0; i < order.Count; i++)
        {
            int s = order[i];
            var op = graph.Ops[backward[s].Op];
            if (op.Kind != OpKind.Add || op.Inputs[0] == op.Inputs[1] || op.Outputs[0] == graph.Output) continue;
            int owner = Owner(op.Outputs[0]);
            int first = -1;
            for (int w = 0; w < 2; w++)
            {
                var write = backward[s].Writes[w];
                if (write.IsNone || write.Accumulate) continue;
                if (layerDrop.BranchInput[backward[s].Op] == w) continue;
                if (first < 0)
                {
                    first = w;
                    shares[write.Value] = owner;
                    elided[s] |= 1 << w;
                }
                else if (BranchCanShare(write.Value, owner, i))
                {
                    shares[write.Value] = owner;
                    elided[s] |= 1 << w;
                }
            }
        }
        return new GradientAliasPlan(shares.ToEquatableArray(), elided.ToEquatableArray());

        bool BranchCanShare(int branch, int owner, int position)
        {
            int made = producer[branch];
            if (soleReader[branch] < 0 || branch == graph.Output || made < 0) return false;
            if (position + 1 >= order.Count) return false;
            int next = order[position + 1];
            if (backward[next].Op != made || epilogues.IsFusedBackward(next)) return false;
            foreach (int target in WriteTargets(next))
                if (Owner(target) == owner) return false;
            return true;
        }

        IEnumerable<int> WriteTargets(int step)
        {
            int fused = epilogues.GeluLinearBackward[step];
            for (int w = 0; w < backward[step].Writes.Count; w++)
            {
                var write = backward[step].Writes[w];
                if (write.IsNone) continue;
                // A fused GeLU backward writes the GeLU input's gradient in place of the Linear input's.
                yield return w == 0 && fused >= 0 ? graph.Ops[backward[fused].Op].Inputs[0] : write.Value;
            }
        }
    }
}
