using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Gradients written over their own value: the loss's logits. A cross-entropy's backward (whole-vocabulary, or a
/// vocabulary-parallel rank's range from the all-reduced row statistics) turns each logits element into its gradient
/// (softmax − one-hot, scaled), reading it before writing it, and every backend's kernel allows <c>dlogits</c> to be
/// <c>logits</c>. When that backward is the logits' last reader and the first,
/// overwriting writer of their gradient, the gradient needs no buffer of its own. For a language model that is the
/// step's largest tensor: batch·T·vocabulary elements (1.6 GB for GPT-2 124M at 16 × 1024 in 16 bits).
/// </summary>
internal static class InPlaceGradientPlanner
{
    /// <summary>
    /// The values whose gradient can take their buffer, each with the backward time that reads the value last and
    /// writes the gradient first. <paramref name="start"/> and <paramref name="end"/> are the planner's first and last
    /// touch of each (value, role) on the step's timeline.
    /// </summary>
    public static List<int> Find(IrGraph graph, EquatableArray<BackwardStep> backward, CheckpointPlan checkpoints,
        GradientAliasPlan aliases, IReadOnlyDictionary<(int, BufferRole), int> start, IReadOnlyDictionary<(int, BufferRole), int> end)
    {
        var found = new List<int>();
        var timeline = checkpoints.Timeline;
        for (int i = 0; i < timeline.Count; i++)
        {
            if (timeline[i].IsRecompute) continue;
            var op = graph.Ops[timeline[i].Op];
            if (op.Kind != OpKind.CrossEntropy) continue;
            var writes = backward[timeline[i].Step].Writes;
            if (writes.Count == 0 || writes[0].IsNone || writes[0].Accumulate) continue;
            int logits = op.Inputs[0], time = graph.Ops.Count + i;
            if (writes[0].Value != logits || !Eligible(graph, checkpoints, aliases, logits)) continue;
            if (end.TryGetValue((logits, BufferRole.Value), out int lastRead) && lastRead == time &&
                start.TryGetValue((logits, BufferRole.Gradient), out int firstWrite) && firstWrite == time)
            {
                found.Add(logits);
            }
        }
        return found;
    }

    /// <summary>A plain activation: not a program input or output, not recomputed, and no other gradient shares its gradient's buffer.</summary>
    private static bool Eligible(IrGraph graph, CheckpointPlan checkpoints, GradientAliasPlan aliases, int value)
    {
        if (graph.Values[value].Kind != ValueKind.Real || graph.Values[value].Fp32Statistics) return false;
        if (graph.IsInputOrOutput(value)) return false;
        if (checkpoints.IsDroppedInForward(value) || aliases.GradientOwner(value) != value) return false;
        for (int v = 0; v < graph.Values.Count; v++)
        {
            if (v != value && aliases.GradientOwner(v) == value) return false;
        }
        return true;
    }
}
