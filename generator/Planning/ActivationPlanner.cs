using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

internal enum BufferRole
{
    /// <summary>A forward value (an activation, or a tensor saved for backward).</summary>
    Value,
    /// <summary>The gradient of a forward value.</summary>
    Gradient,
    /// <summary>This tensor rank's part of a checkpointed input kept in parts between forward and backward.</summary>
    Partition,
}

/// <summary>
/// A planned region of the activation arena, in elements per sample (multiply by the batch for the real size).
/// It is live from step <see cref="Start"/> to <see cref="End"/> inclusive on the forward+backward timeline, except
/// for a value of a checkpointed layer: dead after step <see cref="DroppedAfter"/> (its layer's forward) until step
/// <see cref="RecomputedFrom"/> (the recompute), its memory lent to other buffers in between.
/// </summary>
internal sealed record ActivationBuffer(string Name, int Value, BufferRole Role, long ElementsPerSample, long OffsetPerSample, int Start, int End)
{
    public int DroppedAfter { get; init; } = -1;

    public int RecomputedFrom { get; init; } = -1;

    public bool IsRecomputed => RecomputedFrom >= 0;

    /// <summary>The steps it is live, as one or two inclusive intervals.</summary>
    public IEnumerable<(int Start, int End)> LiveIntervals()
    {
        if (!IsRecomputed)
        {
            yield return (Start, End);
            yield break;
        }
        yield return (Start, DroppedAfter);
        yield return (RecomputedFrom, End);
    }
}

/// <summary>
/// A checkpointed input the tensor ranks keep in parts: after forward op <see cref="StashAfterOp"/> (its last forward
/// use) each rank copies its 1/t of the value into its <see cref="BufferRole.Partition"/> buffer, and before backward
/// timeline event <see cref="RestoreBeforeEvent"/> (its first backward use) the ranks all-gather the parts back into
/// the value's buffer; the value's memory serves others in between.
/// </summary>
internal sealed record PartitionCopy(int Value, int StashAfterOp, int RestoreBeforeEvent);

/// <summary>A region of the index arena (token ids, targets, positions); small, so never reused.</summary>
internal sealed record IndexBuffer(string Name, int Value, long ElementsPerSample, long OffsetPerSample);

/// <summary>The static activation memory plan: where every buffer lives and how large the arena is per sample.</summary>
internal sealed record ActivationPlan(
    EquatableArray<ActivationBuffer> Buffers,
    EquatableArray<IndexBuffer> Indices,
    long ArenaElementsPerSample,
    long UnsharedElementsPerSample,
    long IndexElementsPerSample,
    int Steps)
{
    /// <summary>The arena the same program would need without activation checkpointing (equal when nothing is checkpointed).</summary>
    public long ArenaWithoutCheckpointingPerSample { get; init; } = ArenaElementsPerSample;

    /// <summary>Values whose gradient is written over their own buffer (<see cref="InPlaceGradientPlanner"/>).</summary>
    public EquatableArray<int> GradientsOverValues { get; init; } = EquatableArray<int>.Empty;

    /// <summary>Checkpointed inputs kept in host memory, in stash order, and the host store they take per sample.</summary>
    public EquatableArray<HostCopy> HostCopies { get; init; } = EquatableArray<HostCopy>.Empty;

    /// <summary>Checkpointed inputs kept in parts over the tensor ranks (each a <see cref="BufferRole.Partition"/> buffer), in stash order.</summary>
    public EquatableArray<PartitionCopy> PartitionCopies { get; init; } = EquatableArray<PartitionCopy>.Empty;

    public long HostElementsPerSample => HostCopies.Count == 0 ? 0 : HostCopies.Max(c => c.HostOffsetPerSample + ActivationPlanner.Align(c.ElementsPerSample));

    public ActivationBuffer? Find(int value, BufferRole role) => Buffers.FirstOrDefault(b => b.Value == value && b.Role == role);
}

/// <summary>
/// Places every activation, saved tensor and activation gradient by liveness over the whole step (forward ops, then
/// backward steps): buffers whose lifetimes do not overlap share memory. Greedy by size, largest first, into the
/// lowest offset that is free for the buffer's whole lifetime — simple, deterministic and near-optimal for chains.
/// The backward half of the timeline is the checkpoint plan's: a value a checkpointed layer drops lives during the
/// layer's forward, dies, and lives again from its recompute to its last backward use.
/// </summary>
internal static class ActivationPlanner
{
    private const int AlignmentElements = 16;

    public static ActivationPlan Plan(IrGraph graph, EquatableArray<BackwardStep> backward, CheckpointPlan checkpoints, EpiloguePlan epilogues,
        GradientAliasPlan aliases)
    {
        var plan = PlanTimeline(graph, backward, checkpoints, epilogues, aliases);
        if (checkpoints.IsEmpty) return plan;
        var none = CheckpointPlan.None(backward);
        var without = PlanTimeline(graph, backward, none, EpilogueFusionPlanner.Plan(graph, backward, none), aliases);
        return plan with { ArenaWithoutCheckpointingPerSample = without.ArenaElementsPerSample };
    }

    /// <summary>
    /// The fused Linear → GeLU pairs of <paramref name="epilogues"/> move work between steps: the GeLU output is written
    /// at the Linear's step (forward and recompute), and a fused backward writes the pre-activation's gradient, reading
    /// the pre-activation, at the Linear's step, while the GeLU's own step touches nothing (the GeLU output's gradient
    /// is never stored, so it gets no buffer). A fused residual Add → LayerNorm runs at the LayerNorm's step, so the
    /// Add's operands live until then (the Add's own step is still counted: nothing runs between the two). An aliased
    /// gradient (<paramref name="aliases"/>) is planned as its owner's buffer, live over both lifetimes, and listed
    /// under its own name at the owner's offset; so is a gradient written over its own value (the logits,
    /// <see cref="InPlaceGradientPlanner"/>), listed at the value's offset from the step that turns one into the other.
    /// </summary>
    private static ActivationPlan PlanTimeline(IrGraph graph, EquatableArray<BackwardStep> backward, CheckpointPlan checkpoints, EpiloguePlan epilogues,
        GradientAliasPlan aliases)
    {
        int forwardSteps = graph.Ops.Count;
        var timeline = checkpoints.Timeline;
        int lastStep = forwardSteps + timeline.Count; // one past the last backward step: "until the caller is done"
        var start = new Dictionary<(int, BufferRole), int>();
        var end = new Dictionary<(int, BufferRole), int>();
        var recomputedFrom = new Dictionary<int, int>(); // a dropped value's first touch in backward
        var recomputedTo = new Dictionary<int, int>();

        void Touch(int value, BufferRole role, int time)
        {
            if (role == BufferRole.Value && time >= forwardSteps && checkpoints.IsDroppedInForward(value))
            {
                recomputedFrom[value] = recomputedFrom.TryGetValue(value, out int rs) ? Math.Min(rs, time) : time;
                recomputedTo[value] = recomputedTo.TryGetValue(value, out int re) ? Math.Max(re, time) : time;
                return;
            }
            if (role == BufferRole.Gradient) value = aliases.GradientOwner(value);
            var key = (value, role);
            start[key] = start.TryGetValue(key, out int s) ? Math.Min(s, time) : time;
            end[key] = end.TryGetValue(key, out int e) ? Math.Max(e, time) : time;
        }

        // A LayerNorm that computes the residual Add before it reads the Add's operands and writes the sum at its step.
        void TouchFusedAdd(int op, int time)
        {
            int add = epilogues.AddBeforeNorm(op);
            if (add < 0) return;
            foreach (int value in graph.Ops[add].Inputs) Touch(value, BufferRole.Value, time);
            Touch(graph.Ops[add].Outputs[0], BufferRole.Value, time);
        }

        foreach (var input in graph.Inputs) Touch(input.Value, BufferRole.Value, 0);
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            var op = graph.Ops[k];
            foreach (int input in op.Inputs) Touch(input, BufferRole.Value, k);
            foreach (int output in op.Outputs) Touch(output, BufferRole.Value, k);
            if (epilogues.LinearGelu[k] >= 0) Touch(graph.Ops[epilogues.LinearGelu[k]].Outputs[0], BufferRole.Value, k);
            TouchFusedAdd(k, k);
        }

        if (!graph.OutputIsLoss)
        {
            Touch(graph.Output, BufferRole.Value, lastStep);
            Touch(graph.Output, BufferRole.Gradient, forwardSteps);
        }
        foreach (var input in graph.Inputs)
        {
            if (graph.Values[input.Value].Kind == ValueKind.Real) Touch(input.Value, BufferRole.Gradient, lastStep);
        }

        for (int i = 0; i < timeline.Count; i++)
        {
            int time = forwardSteps + i;
            var op = graph.Ops[timeline[i].Op];
            if (timeline[i].IsRecompute)
            {
                foreach (int input in op.Inputs) Touch(input, BufferRole.Value, time);
                foreach (int output in op.Outputs) Touch(output, BufferRole.Value, time);
                int gelu = epilogues.LinearGelu[timeline[i].Op];
                if (gelu >= 0) Touch(graph.Ops[gelu].Outputs[0], BufferRole.Value, time);
                TouchFusedAdd(timeline[i].Op, time);
                continue;
            }
            int step = timeline[i].Step;
            if (epilogues.IsFusedBackward(step)) continue;
            foreach (int saved in SavedForBackward(op)) Touch(saved, BufferRole.Value, time);
            if (op.Kind != OpKind.CrossEntropy) Touch(op.Outputs[0], BufferRole.Gradient, time);
            int fusedGelu = epilogues.GeluLinearBackward[step];
            for (int w = 0; w < backward[step].Writes.Count; w++)
            {
                var write = backward[step].Writes[w];
                if (write.IsNone) continue;
                if (w == 0 && fusedGelu >= 0)
                {
                    // The gradient skips the GeLU output and lands on the GeLU's input, computed from it.
                    int pre = graph.Ops[backward[fusedGelu].Op].Inputs[0];
                    Touch(pre, BufferRole.Value, time);
                    Touch(pre, BufferRole.Gradient, time);
                    continue;
                }
                Touch(write.Value, BufferRole.Gradient, time);
            }
        }

        // A gradient written over its own value (the logits) is planned as one buffer over both lifetimes.
        var inPlace = InPlaceGradientPlanner.Find(graph, backward, checkpoints, aliases, start, end);
        var gradientLives = new Dictionary<int, (int Start, int End)>();
        foreach (int value in inPlace)
        {
            var gradient = (value, BufferRole.Gradient);
            gradientLives[value] = (start[gradient], end[gradient]);
            end[(value, BufferRole.Value)] = end[gradient];
            start.Remove(gradient);
            end.Remove(gradient);
        }

        var candidates = new List<ActivationBuffer>();
        var partitionCopies = PartitionParts(graph, checkpoints, forwardSteps, end, recomputedFrom, candidates);
        var indices = new List<IndexBuffer>();
        long indexOffset = 0;
        foreach (var key in start.Keys.OrderBy(k => k.Item1).ThenBy(k => k.Item2))
        {
            var value = graph.Values[key.Item1];
            if (value.Kind == ValueKind.Tokens)
            {
                indices.Add(new IndexBuffer(value.Name, value.Id, value.ElementsPerSample, indexOffset));
                indexOffset += value.ElementsPerSample;
                continue;
            }
            if (graph.OutputIsLoss && value.Id == graph.Output) continue; // the loss is returned, not stored
            string name = key.Item2 == BufferRole.Gradient ? "d(" + value.Name + ")" : value.Name;
            var buffer = new ActivationBuffer(name, value.Id, key.Item2, value.ElementsPerSample, 0, start[key], end[key]);
            if (key.Item2 == BufferRole.Value && recomputedFrom.TryGetValue(value.Id, out int from))
                buffer = buffer with { End = recomputedTo[value.Id], DroppedAfter = end[key], RecomputedFrom = from };
            candidates.Add(buffer);
        }

        var placed = Place(candidates);
        long arena = placed.Count == 0 ? 0 : placed.Max(b => b.OffsetPerSample + Align(b.ElementsPerSample));
        long unshared = candidates.Sum(b => Align(b.ElementsPerSample));
        for (int v = 0; v < graph.Values.Count; v++)
        {
            int owner = aliases.GradientOwner(v);
            if (owner == v || placed.FirstOrDefault(b => b.Value == owner && b.Role == BufferRole.Gradient) is not { } shared) continue;
            placed.Add(shared with { Name = "d(" + graph.Values[v].Name + ")", Value = v });
        }
        foreach (int value in inPlace)
        {
            int index = placed.FindIndex(b => b.Value == value && b.Role == BufferRole.Value);
            var buffer = placed[index];
            var (gradientStart, gradientEnd) = gradientLives[value];
            placed[index] = buffer with { End = gradientStart };
            placed.Add(buffer with { Name = "d(" + graph.Values[value].Name + ")", Role = BufferRole.Gradient, Start = gradientStart, End = gradientEnd });
            unshared += Align(buffer.ElementsPerSample);
        }
        // Report in timeline order, which reads better than placement order.
        placed = placed.OrderBy(b => b.Start).ThenBy(b => b.Role).ThenBy(b => b.Value).ToList();
        return new ActivationPlan(placed.ToEquatableArray(), indices.ToEquatableArray(), arena, unshared, indexOffset, lastStep)
        {
            GradientsOverValues = inPlace.ToEquatableArray(),
            HostCopies = HostCopyPlanner.Plan(graph, checkpoints, forwardSteps, end, recomputedFrom, placed),
            PartitionCopies = partitionCopies,
        };
    }

    /// <summary>
    /// <c>[Checkpoint(PartitionInputs = true)]</c>: for each partitioned value backward reads again, a part buffer of
    /// ⌈elements / t⌉ per sample, live from the value's last forward use (the copy into it) to its first backward use
    /// (the all-gather out of it), added to <paramref name="candidates"/>. A value read by the last forward op and the
    /// first backward event has nothing between its two uses that could take its memory: it stays whole.
    /// </summary>
    private static EquatableArray<PartitionCopy> PartitionParts(IrGraph graph, CheckpointPlan checkpoints, int forwardSteps,
        IReadOnlyDictionary<(int, BufferRole), int> end, IReadOnlyDictionary<int, int> recomputedFrom, List<ActivationBuffer> candidates)
    {
        var copies = new List<PartitionCopy>();
        foreach (int value in checkpoints.PartitionedValues.OrderBy(v => end[(v, BufferRole.Value)]).ThenBy(v => v))
        {
            if (!recomputedFrom.TryGetValue(value, out int restore)) continue;
            int stash = end[(value, BufferRole.Value)];
            if (stash == forwardSteps - 1 && restore == forwardSteps) continue;
            var v = graph.Values[value];
            long part = (v.ElementsPerSample + checkpoints.TensorDegree - 1) / checkpoints.TensorDegree;
            candidates.Add(new ActivationBuffer("part(" + v.Name + ")", value, BufferRole.Partition, part, 0, stash, restore));
            copies.Add(new PartitionCopy(value, stash, restore - forwardSteps));
        }
        return copies.ToEquatableArray();
    }

    /// <summary>Tensors an op's backward reads besides the incoming gradient.</summary>
    public static IEnumerable<int> SavedForBackward(IrOp op) => op.Kind switch
    {
        OpKind.Linear => new[] { op.Inputs[0] },
        OpKind.LayerNorm => new[] { op.Inputs[0], op.Outputs[1], op.Outputs[2] },
        OpKind.Gelu => new[] { op.Inputs[0] },
        OpKind.Attention => new[] { op.Inputs[0], op.Outputs[0], op.Outputs[1] },
        OpKind.CrossEntropy when op.Outputs.Count > 1 => new[] { op.Inputs[0], op.Inputs[1], op.Outputs[1], op.Outputs[2] }, // vocabulary-parallel: row max and sum
        OpKind.CrossEntropy => new[] { op.Inputs[0], op.Inputs[1] },
        OpKind.Embedding => new[] { op.Inputs[0] },
        OpKind.TokenGather => new[] { op.Inputs[1] },
        OpKind.TokenScatter => new[] { op.Inputs[2] },
        _ => Array.Empty<int>(),
    };

    private static List<ActivationBuffer> Place(List<ActivationBuffer> buffers)
    {
        var packer = new IntervalPacker();
        var placed = new List<ActivationBuffer>();
        foreach (var buffer in buffers.OrderByDescending(b => b.ElementsPerSample).ThenBy(b => b.Start).ThenBy(b => b.Value).ThenBy(b => b.Role))
            placed.Add(buffer with { OffsetPerSample = packer.Place(Align(buffer.ElementsPerSample), buffer.LiveIntervals()) });
        return placed;
    }

    /// <summary>A buffer's elements rounded up to the arena's alignment (the host store of host copies uses it too).</summary>
    internal static long Align(long elements) => (elements + AlignmentElements - 1) / AlignmentElements * AlignmentElements;
}
