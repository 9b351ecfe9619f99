using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Finds what <c>[Checkpoint]</c> layers drop and recompute. Works on any traced graph whose ops carry their layer
/// path (the whole model, or one pipeline stage): a segment is each maximal run of consecutive ops inside a
/// checkpointed layer. A value produced in the segment is dropped when nothing outside the segment reads it and its
/// op can be re-run without rewriting a kept value: re-running an op that also writes a kept value (the layer's
/// output, say) could overwrite memory the plan has already lent to a later buffer, so such an op keeps all its outputs.
/// </summary>
internal static class CheckpointPlanner
{
    /// <param name="tensorDegree">The tensor ranks the program is planned for; above 1, <c>PartitionInputs</c> layers split their inputs over them.</param>
    public static CheckpointPlan Plan(IrGraph graph, LayerNode root, EquatableArray<BackwardStep> backward, int tensorDegree = 1)
    {
        var checkpointed = LayerPaths.Outermost(root, node => node.Checkpoint).ToList();
        var layers = checkpointed.Select(node => node.Path).ToList();
        if (layers.Count == 0) return CheckpointPlan.None(backward);
        var onHost = new HashSet<string>(checkpointed.Where(node => node.CheckpointInputsOnHost).Select(node => node.Path));
        var partitioned = new HashSet<string>(tensorDegree > 1
            ? checkpointed.Where(node => node.CheckpointPartitionInputs && !node.CheckpointInputsOnHost).Select(node => node.Path)
            : Enumerable.Empty<string>());

        var segments = new List<CheckpointSegment>();
        for (int k = 0; k < graph.Ops.Count;)
        {
            string? layer = layers.FirstOrDefault(l => LayerPaths.Inside(graph.Ops[k].Layer, l));
            if (layer is null)
            {
                k++;
                continue;
            }
            int last = k;
            while (last + 1 < graph.Ops.Count && LayerPaths.Inside(graph.Ops[last + 1].Layer, layer)) last++;
            var segment = Segment(graph, layer, k, last, backward);
            if (segment.Internals.Count > 0) segments.Add(segment);
            k = last + 1;
        }
        if (segments.Count == 0) return CheckpointPlan.None(backward);
        return new CheckpointPlan(segments.ToEquatableArray(), Timeline(segments, backward))
        {
            HostValues = KeptInputs(graph, segments.Where(s => onHost.Contains(s.Layer))),
            // A value the ranks hold differently cannot be put back together from their parts: it stays whole.
            PartitionedValues = KeptInputs(graph, segments.Where(s => partitioned.Contains(s.Layer)))
                .Where(value => !graph.Values[value].DiffersAcrossTensorRanks).ToEquatableArray(),
            TensorDegree = tensorDegree,
        };
    }

    /// <summary>
    /// The inputs of the segments whose layer keeps them elsewhere (host memory, or parts over the tensor ranks):
    /// activations only (the program's inputs are the caller's, and its output is read after backward).
    /// </summary>
    private static EquatableArray<int> KeptInputs(IrGraph graph, IEnumerable<CheckpointSegment> segments)
    {
        var values = new SortedSet<int>();
        foreach (var segment in segments)
        {
            foreach (int value in segment.Inputs)
            {
                if (graph.Values[value].Kind != ValueKind.Real || graph.IsInputOrOutput(value)) continue;
                values.Add(value);
            }
        }
        return values.ToEquatableArray();
    }

    private static CheckpointSegment Segment(IrGraph graph, string layer, int first, int last, EquatableArray<BackwardStep> backward)
    {
        bool InSegment(int op) => op >= first && op <= last;
        var readOutside = new HashSet<int> { graph.Output };
        foreach (var input in graph.Inputs) readOutside.Add(input.Value);
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            if (InSegment(k)) continue;
            foreach (int input in graph.Ops[k].Inputs) readOutside.Add(input);
        }

        var produced = new HashSet<int>();
        var inputs = new List<int>();
        var internals = new List<int>();
        var droppable = new List<int>();
        for (int k = first; k <= last; k++)
        {
            var op = graph.Ops[k];
            foreach (int input in op.Inputs)
            {
                if (!produced.Contains(input) && !inputs.Contains(input)) inputs.Add(input);
            }
            foreach (int output in op.Outputs) produced.Add(output);
            if (!op.Outputs.All(v => graph.Values[v].Kind == ValueKind.Real && !readOutside.Contains(v))) continue;
            droppable.Add(k);
            internals.AddRange(op.Outputs);
        }

        // Re-run only what the layer's backward reads, directly or through the ops that produce it: the output of
        // the last Linear before a residual Add, say, is dropped and never needed again.
        var needed = new HashSet<int>();
        foreach (var step in backward)
        {
            if (InSegment(step.Op)) needed.UnionWith(ActivationPlanner.SavedForBackward(graph.Ops[step.Op]));
        }
        var recomputed = new List<int>();
        for (int i = droppable.Count - 1; i >= 0; i--)
        {
            var op = graph.Ops[droppable[i]];
            if (!op.Outputs.Any(needed.Contains)) continue;
            recomputed.Insert(0, droppable[i]);
            needed.UnionWith(op.Inputs);
        }
        return new CheckpointSegment(layer, first, last, inputs.ToEquatableArray(), internals.ToEquatableArray(), recomputed.ToEquatableArray());
    }

    /// <summary>The backward steps, with each segment's recomputed ops inserted before the first step of the segment.</summary>
    private static EquatableArray<BackwardEvent> Timeline(List<CheckpointSegment> segments, EquatableArray<BackwardStep> backward)
    {
        var events = new List<BackwardEvent>();
        var done = new bool[segments.Count];
        for (int j = 0; j < backward.Count; j++)
        {
            int op = backward[j].Op;
            int s = segments.FindIndex(x => op >= x.FirstOp && op <= x.LastOp);
            if (s >= 0 && !done[s])
            {
                done[s] = true;
                foreach (int k in segments[s].RecomputedOps) events.Add(new BackwardEvent(k, -1, s));
            }
            events.Add(new BackwardEvent(op, j, s));
        }
        return events.ToEquatableArray();
    }
}
