using System.Linq;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// One contiguous run of forward ops of a <c>[Checkpoint]</c> layer (<see cref="FirstOp"/>..<see cref="LastOp"/>
/// inclusive). <see cref="Inputs"/> are values it reads that were produced before it: kept from forward to the
/// recompute. <see cref="Internals"/> are values only it reads: dropped after its forward; those its backward reads
/// are produced again by re-running <see cref="RecomputedOps"/> (in forward order) just before its first backward step.
/// </summary>
internal sealed record CheckpointSegment(
    string Layer,
    int FirstOp,
    int LastOp,
    EquatableArray<int> Inputs,
    EquatableArray<int> Internals,
    EquatableArray<int> RecomputedOps);

/// <summary>
/// One entry of the backward timeline: backward step <see cref="Step"/> of forward op <see cref="Op"/>, or, when
/// <see cref="Step"/> is negative, forward op <see cref="Op"/> re-run for checkpoint segment <see cref="Segment"/>.
/// </summary>
internal sealed record BackwardEvent(int Op, int Step, int Segment)
{
    public bool IsRecompute => Step < 0;
}

/// <summary>
/// Activation checkpointing of one program: its segments and the backward timeline they produce (backward steps with
/// the recomputed forward ops inserted). Every planner that places something on the forward+backward timeline reads
/// <see cref="Timeline"/>, so time <c>forwardOps + i</c> is event <c>i</c> for all of them. Without checkpointed
/// layers the timeline is the backward steps one to one.
/// </summary>
internal sealed record CheckpointPlan(EquatableArray<CheckpointSegment> Segments, EquatableArray<BackwardEvent> Timeline)
{
    public bool IsEmpty => Segments.Count == 0;

    /// <summary>
    /// Inputs of <c>[Checkpoint(InputsOnHost = true)]</c> segments that wait in host memory between their last forward
    /// use and their first backward use (activations only: not the program's inputs or output).
    /// </summary>
    public EquatableArray<int> HostValues { get; init; } = EquatableArray<int>.Empty;

    /// <summary>
    /// Inputs of <c>[Checkpoint(PartitionInputs = true)]</c> segments that the tensor ranks keep a part each of between
    /// their last forward use and their first backward use (activations the same on every rank; empty for a program
    /// planned for one tensor rank).
    /// </summary>
    public EquatableArray<int> PartitionedValues { get; init; } = EquatableArray<int>.Empty;

    /// <summary>The tensor-parallel degree the program is planned for: each rank keeps 1/<see cref="TensorDegree"/> of a partitioned value.</summary>
    public int TensorDegree { get; init; } = 1;

    /// <summary>
    /// Whether <paramref name="value"/> leaves the device's arena after its forward: recomputed, kept in host memory, or
    /// kept in parts over the tensor ranks.
    /// </summary>
    public bool IsDroppedInForward(int value) => IsRecomputed(value) || HostValues.Contains(value) || PartitionedValues.Contains(value);

    /// <summary>The plan of a program with no checkpointed layer.</summary>
    public static CheckpointPlan None(EquatableArray<BackwardStep> backward)
        => new(EquatableArray<CheckpointSegment>.Empty,
            backward.Select((step, j) => new BackwardEvent(step.Op, j, -1)).ToEquatableArray());

    /// <summary>For each of the program's <paramref name="ops"/> forward ops, the segment that re-runs it; −1 for none.</summary>
    public int[] RecomputingSegments(int ops)
    {
        var segment = new int[ops];
        for (int k = 0; k < ops; k++) segment[k] = -1;
        for (int s = 0; s < Segments.Count; s++)
            foreach (int op in Segments[s].RecomputedOps) segment[op] = s;
        return segment;
    }

    /// <summary>Whether <paramref name="value"/> is dropped after forward and recomputed in backward.</summary>
    public bool IsRecomputed(int value) => Segments.Any(s => s.Internals.Contains(value));
}
