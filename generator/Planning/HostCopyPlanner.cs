using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// A checkpointed input kept in host memory: copied to the host store at <see cref="HostOffsetPerSample"/> after
/// forward op <see cref="StashAfterOp"/> (its last forward use) and back before backward timeline event
/// <see cref="RestoreBeforeEvent"/> (its first backward use); its device buffer serves others in between. The copies
/// may run beside the computation (a GPU's copy stream): the computation waits for the stash before
/// <see cref="AwaitStashAt"/>, the first step another buffer takes the memory (−1: none does), and the restore is
/// issued before <see cref="RestoreIssueAt"/>, the first step after the last other buffer there has finished with it.
/// Steps count on the forward+backward timeline: forward op k is step k, backward event i is step forward ops + i.
/// </summary>
internal sealed record HostCopy(int Value, long ElementsPerSample, long HostOffsetPerSample, int StashAfterOp, int RestoreBeforeEvent)
{
    public int AwaitStashAt { get; init; } = -1;

    public int RestoreIssueAt { get; init; }
}

/// <summary>
/// Plans <c>[Checkpoint(InputsOnHost = true)]</c>'s copies once the <see cref="ActivationPlanner"/> has placed every
/// buffer: where each host value goes in the host store, when it is stashed and restored, and where the computation
/// must wait for the copies so that they can run beside it.
/// </summary>
internal static class HostCopyPlanner
{
    /// <summary>
    /// The host store of the checkpoint plan's host values: each is stashed after its last forward touch and restored
    /// before its first backward touch (a value backward never reads is not stashed at all, nor one whose two uses are
    /// the last forward op and the first backward event), at consecutive offsets in
    /// stash order (all of them are in host memory at once between forward and backward, so nothing is shared).
    /// </summary>
    public static EquatableArray<HostCopy> Plan(IrGraph graph, CheckpointPlan checkpoints, int forwardSteps,
        IReadOnlyDictionary<(int, BufferRole), int> end, IReadOnlyDictionary<int, int> recomputedFrom, List<ActivationBuffer> placed)
    {
        var copies = new List<HostCopy>();
        long offset = 0;
        foreach (int value in checkpoints.HostValues.OrderBy(v => end[(v, BufferRole.Value)]).ThenBy(v => v))
        {
            if (!recomputedFrom.TryGetValue(value, out int restore)) continue;
            // Read by the last forward op and again by the first backward event: nothing runs in between that could
            // use its memory, so it stays on the device (its two live intervals meet).
            int stash = end[(value, BufferRole.Value)];
            if (stash == forwardSteps - 1 && restore == forwardSteps) continue;
            long elements = graph.Values[value].ElementsPerSample;
            copies.Add(WhenOthersUseItsMemory(new HostCopy(value, elements, offset, stash, restore - forwardSteps), stash, restore, placed));
            offset += ActivationPlanner.Align(elements);
        }
        return copies.ToEquatableArray();
    }

    /// <summary>
    /// The steps between the stash (after <paramref name="stash"/>) and the restore (before <paramref name="restore"/>)
    /// where other buffers live in the value's memory: the packer placed them wholly inside that gap, so the stash must
    /// be done before the first of them starts and the restore may start once the last of them has ended.
    /// </summary>
    private static HostCopy WhenOthersUseItsMemory(HostCopy copy, int stash, int restore, List<ActivationBuffer> placed)
    {
        var own = placed.First(b => b.Value == copy.Value && b.Role == BufferRole.Value);
        long from = own.OffsetPerSample, to = own.OffsetPerSample + ActivationPlanner.Align(own.ElementsPerSample);
        int firstStart = int.MaxValue, lastEnd = -1;
        foreach (var other in placed)
        {
            if (ReferenceEquals(other, own) || other.OffsetPerSample >= to || other.OffsetPerSample + ActivationPlanner.Align(other.ElementsPerSample) <= from) continue;
            foreach (var (start, end) in other.LiveIntervals())
            {
                if (end <= stash || start >= restore) continue;
                firstStart = Math.Min(firstStart, start);
                lastEnd = Math.Max(lastEnd, end);
            }
        }
        return copy with
        {
            AwaitStashAt = lastEnd < 0 ? -1 : firstStart,
            RestoreIssueAt = lastEnd < 0 ? stash + 1 : lastEnd + 1,
        };
    }
}
