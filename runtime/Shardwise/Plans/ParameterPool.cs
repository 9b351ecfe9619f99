namespace Shardwise.Plans;

/// <summary>
/// The generator's ZeRO-3 residency plan: where each parameter slot lives in a small pool while it is gathered for
/// forward (phase 0) and for backward (phase 1), and how large that pool is. The generated program calls
/// <c>ParametersNeeded(slot, phase)</c> before a slot's first use in a phase and <c>ParametersReleased</c> after its last.
/// </summary>
public sealed class ParameterPool
{
    public ParameterPool(long[] forwardOffsets, long[] backwardOffsets, long poolElements, int[] gatherOrderSlots, int[] gatherOrderPhases,
        int[]? skippedWith = null)
    {
        SkippedWith = skippedWith;
        ForwardOffsets = forwardOffsets;
        BackwardOffsets = backwardOffsets;
        PoolElements = poolElements;
        GatherOrderSlots = gatherOrderSlots;
        GatherOrderPhases = gatherOrderPhases;
    }

    /// <summary>The static order of <c>ParametersNeeded</c> calls in one training step: slot, then phase (parallel arrays).</summary>
    public global::System.Collections.Generic.IReadOnlyList<int> GatherOrderSlots { get; }

    public global::System.Collections.Generic.IReadOnlyList<int> GatherOrderPhases { get; }

    public global::System.Collections.Generic.IReadOnlyList<long> ForwardOffsets { get; }

    public global::System.Collections.Generic.IReadOnlyList<long> BackwardOffsets { get; }

    public long PoolElements { get; }

    /// <summary>
    /// Per slot, the <c>[LayerDrop]</c> layer (its index in <c>DroppableLayers</c>) whose skip leaves the slot unread in
    /// forward and backward, so that neither of its gathers is needed in a micro-batch that drops it; −1 for slots
    /// always read. Null when the model has no such slot.
    /// </summary>
    public global::System.Collections.Generic.IReadOnlyList<int>? SkippedWith { get; }

    public long Offset(int slot, int phase) => phase == 0 ? ForwardOffsets[slot] : BackwardOffsets[slot];
}
