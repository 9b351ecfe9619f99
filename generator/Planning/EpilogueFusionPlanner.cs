using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Which Linear/GeLU pairs run as one backend call, so that the GeLU rides on the Linear's GEMM (a cuBLASLt epilogue
/// on the CUDA backend) instead of a pass of its own over the activation; and which residual Adds run inside the
/// LayerNorm after them (<see cref="AddLayerNorm"/>).
/// <para>
/// <see cref="LinearGelu"/>[k] is the GeLU op a Linear op k computes with it (<c>Ops.LinearGelu</c>: the Linear's
/// output is the pre-activation, kept for the GeLU's backward; the GeLU's output is written at step k), −1 otherwise;
/// that GeLU op then emits nothing. <see cref="GeluLinearBackward"/>[j] is the GeLU backward step that backward step j,
/// of a Linear reading that GeLU's output, takes over (<c>Ops.GeluLinearBackward</c>: the gradient goes straight to
/// the GeLU's input, the GeLU output's gradient is never stored), −1 otherwise; that GeLU step then emits nothing.
/// </para>
/// </summary>
internal sealed record EpiloguePlan(EquatableArray<int> LinearGelu, EquatableArray<int> GeluLinearBackward)
{
    /// <summary>
    /// [k]: the residual Add op that LayerNorm op k computes with it (<c>Ops.AddLayerNorm</c>, at the LayerNorm's
    /// step), −1 otherwise; that Add then emits nothing (<see cref="ResidualNormFusionPlanner"/>). Empty: none.
    /// </summary>
    public EquatableArray<int> AddLayerNorm { get; init; } = EquatableArray<int>.Empty;

    /// <summary>Whether forward op <paramref name="op"/> (a GeLU) is computed by the Linear before it.</summary>
    public bool IsFusedForward(int op) => LinearGelu.Contains(op);

    /// <summary>Whether backward step <paramref name="step"/> (a GeLU's) is done by the Linear step before it.</summary>
    public bool IsFusedBackward(int step) => GeluLinearBackward.Contains(step);

    /// <summary>The Add op that LayerNorm op <paramref name="op"/> computes with it; −1 when none.</summary>
    public int AddBeforeNorm(int op) => op < AddLayerNorm.Count ? AddLayerNorm[op] : -1;

    /// <summary>Whether forward op <paramref name="op"/> (an Add) is computed by the LayerNorm after it.</summary>
    public bool IsFusedAdd(int op) => AddLayerNorm.Contains(op);

    /// <summary>Whether there is a Linear/GeLU fusion (the residual norms are counted apart).</summary>
    public bool HasGeluFusion => LinearGelu.Any(g => g >= 0) || GeluLinearBackward.Any(s => s >= 0);

    public int FusedAddCount => AddLayerNorm.Count(a => a >= 0);

    public bool IsEmpty => !HasGeluFusion && FusedAddCount == 0;
}

/// <summary>
/// Finds the Linear → GeLU pairs of <see cref="EpiloguePlan"/>. Every fusion keeps the program's semantics and its
/// buffers (the CPU backend runs a fused call as the unfused sequence, bitwise):
/// <list type="bullet">
/// <item>forward: a Linear whose output is read by exactly one op, a GeLU, and is not the program's output; both ops
/// re-run for the same checkpoint segment or neither (so a recompute writes the GeLU output only where the unfused
/// program would);</item>
/// <item>backward: a Linear whose input is a GeLU output read by no other op (and not the program's output), whose
/// backward step is followed directly on the timeline (no recompute between) by that GeLU's, where both steps
/// overwrite their input gradients (first gradient to reach them). The fused call needs the pre-activation one step
/// earlier, where it is live: nothing runs between the two steps.</item>
/// </list>
/// </summary>
internal static class EpilogueFusionPlanner
{
    public static EpiloguePlan Plan(IrGraph graph, EquatableArray<BackwardStep> backward, CheckpointPlan checkpoints)
    {
        var reader = graph.SoleReaders();
        var producer = graph.Producers();

        var recomputedIn = checkpoints.RecomputingSegments(graph.Ops.Count);

        bool OnlyReadBy(int value, OpKind kind, out int op)
        {
            op = reader[value];
            return op >= 0 && value != graph.Output && graph.Ops[op].Kind == kind;
        }

        var forward = Enumerable.Repeat(-1, graph.Ops.Count).ToArray();
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            var op = graph.Ops[k];
            if (op.Kind != OpKind.Linear) continue;
            if (OnlyReadBy(op.Outputs[0], OpKind.Gelu, out int gelu) && recomputedIn[k] == recomputedIn[gelu])
                forward[k] = gelu;
        }

        var fusedBackward = Enumerable.Repeat(-1, backward.Count).ToArray();
        var timeline = checkpoints.Timeline;
        for (int i = 0; i + 1 < timeline.Count; i++)
        {
            var linearEvent = timeline[i];
            var geluEvent = timeline[i + 1];
            if (linearEvent.IsRecompute || geluEvent.IsRecompute) continue;
            var linear = graph.Ops[linearEvent.Op];
            if (linear.Kind != OpKind.Linear || graph.Ops[geluEvent.Op].Kind != OpKind.Gelu) continue;
            int x = linear.Inputs[0];
            int geluOp = producer[x];
            if (geluOp != geluEvent.Op || graph.Ops[geluOp].Outputs[0] != x) continue;
            if (!OnlyReadBy(x, OpKind.Linear, out _)) continue;
            var linearWrite = backward[linearEvent.Step].Writes[0];
            var geluWrite = backward[geluEvent.Step].Writes[0];
            if (linearWrite.IsNone || linearWrite.Accumulate || geluWrite.IsNone || geluWrite.Accumulate) continue;
            fusedBackward[linearEvent.Step] = geluEvent.Step;
        }

        return new EpiloguePlan(forward.ToEquatableArray(), fusedBackward.ToEquatableArray())
        {
            AddLayerNorm = ResidualNormFusionPlanner.Plan(graph, checkpoints),
        };
    }
}
