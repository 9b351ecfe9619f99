using System;
using System.Collections.Generic;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO-2 and ZeRO-3 with the ranks' arenas on GPUs and a device collective (NCCL): <see cref="SlotSharding"/>'s
/// buckets, pieces and partition, with every copy and collective on the device (<see cref="IDeviceSlotExchangeOps"/>),
/// so no gradient or parameter crosses the bus.
/// <list type="bullet">
/// <item>Backward: when a slot's gradient is final its pieces are staged rank-major (segment r, after the pieces already
/// there) in the current gradient region of the staging, and its pool region is cleared for reuse; once
/// reduce_bucket_size padded elements wait, the region is averaged by an in-place reduce-scatter queued on the
/// collective's stream, and backward goes on. With overlap_comm there are two regions, so the next bucket fills while
/// the last one is reduced (DeepSpeed's double buffer); a region's reduction is completed, and this rank's pieces added
/// to its partition's gradients, only when the region is needed again or backward ends.</item>
/// <item>After the optimizer step (the backend's fused AdamW over the partition): slots are all-gathered in buckets of
/// allgather_bucket_size from every rank's working copy — all of them into the parameter arena at ZeRO-2, the slots
/// kept whole at ZeRO-3.</item>
/// <item>ZeRO-3: as the <see cref="ParameterStreamer"/> asks (<see cref="IParameterGatherer"/>), upcoming slots are
/// gathered ahead in groups into a prefetch region of the staging — each group's all-gather queued on the collective's
/// stream while the layers before it run, and waited for when the program needs its first slot — and copied out into
/// the region the residency plan gives each; a slot not prefetched is gathered alone (<see cref="GatherSlot"/>). Both have
/// regions of the staging of their own, since a gradient bucket may be pending.</item>
/// </list>
/// On one rank there is no collective: the copies alone move each slot between the pool, the partition (the whole
/// model) and the parameter arena, so ZeRO-2/3 on one GPU still steps on the device.
/// The staging holds ranks × <see cref="SlotSharding.SegmentElements"/> per gradient region (plus, at ZeRO-3, ranks ×
/// the largest piece and the prefetch region). A
/// reduction moves one whole segment per rank (the bucket's pieces stay where they were staged, so a bucket closed early
/// also sends the rest of its segment); a gather moves just its pieces.
/// </summary>
public sealed class DeviceSlotSharding : IGradientListener, IParameterGatherer
{
    private readonly SlotSharding _slots;
    private readonly GradientStreamingOps<float> _ops;
    private readonly IDeviceSlotExchangeOps _device;
    private readonly IDeviceCollective? _collective; // null on one rank
    private readonly int _rank, _ranks;
    private readonly long _regionElements;      // one gradient region: ranks × segment
    private readonly long _slotRegion;          // ZeRO-3: where the single-slot gathers' region starts in the staging
    private readonly long _prefetchRegion;      // ZeRO-3: where the prefetch groups' region starts
    private readonly List<int> _pending = new(); // slots staged in the current region since its last reduction, in arrival order
    private readonly Bucket?[] _reducing;        // per gradient region: the bucket whose reduction was queued, not yet completed
    private readonly List<(long Start, long End, DeviceCollectiveTicket Ticket)> _prefetching = new(); // queued prefetch gathers, prefetch-region offsets
    private int _region;                         // the gradient region being filled
    private readonly int[] _allSlots;
    private readonly long[] _layoutOffsets;
    private long _pendingSegment;               // Σ pieces of the pending slots: where the next one goes in each segment

    /// <param name="collective">The data-parallel group on the backend's device; null only for one rank.</param>
    /// <param name="gathersDuringBackward">ZeRO-3: single slots are gathered (<see cref="GatherSlot"/>) while a gradient bucket fills.</param>
    /// <param name="prefetchElements">ZeRO-3: elements of the prefetch region (0: none).</param>
    /// <param name="overlapComm">overlap_comm: two gradient regions when there is a collective (see <see cref="GradientRegions"/>).</param>
    public DeviceSlotSharding(SlotSharding slots, GradientStreamingOps<float> ops, IDeviceSlotExchangeOps device, IDeviceCollective? collective,
        bool gathersDuringBackward, long prefetchElements = 0, bool overlapComm = false)
    {
        (_rank, _ranks) = (slots.Communicator.Rank, slots.Communicator.Size);
        if (collective is null ? _ranks != 1 : collective.Size != _ranks || collective.Rank != _rank)
            throw new ArgumentException($"the device collective is rank {collective?.Rank} of {collective?.Size}, the partition rank {_rank} of {_ranks}");
        _slots = slots;
        _ops = ops;
        _device = device;
        _collective = collective;
        _reducing = new Bucket?[GradientRegions(_ranks, overlapComm)];
        _regionElements = slots.SegmentElements * _ranks;
        _slotRegion = _regionElements * _reducing.Length;
        _prefetchRegion = _slotRegion + (gathersDuringBackward ? slots.LargestPieceLength * _ranks : 0);
        PrefetchElements = Math.Max(0, prefetchElements);
        StagingElements = _prefetchRegion + PrefetchElements;
        _allSlots = new int[slots.Layout.Slots.Count];
        _layoutOffsets = new long[_allSlots.Length];
        for (int i = 0; i < _allSlots.Length; i++) (_allSlots[i], _layoutOffsets[i]) = (i, slots.Layout.Slots[i].Offset);
    }

    /// <summary>
    /// Gradient regions of the staging: two with overlap_comm over several ranks (a bucket fills while the one before is
    /// reduced), else one (on one rank there is nothing to overlap). The memory plan counts the same.
    /// </summary>
    public static int GradientRegions(int ranks, bool overlapComm) => overlapComm && ranks > 1 ? 2 : 1;

    /// <summary>Elements of the staging buffer the backend must hold.</summary>
    public long StagingElements { get; }

    /// <summary>Gradient reductions (one collective each) and parameter gathers (buckets and single slots) run so far.</summary>
    public int ReduceBuckets { get; private set; }

    public int GatherBuckets { get; private set; }

    public void GradientsReady(long fromOffset)
    {
        // ZeRO-2/3 reduce per slot (GradientFinal).
    }

    public void GradientFinal(int slot)
    {
        long chunk = _slots.PieceLength(slot);
        if (_pending.Count > 0 && _slots.OverflowsReduceBucket(_pendingSegment, slot)) CloseBucketDuringBackward();
        if (_pending.Count == 0) CompleteReduction(_region); // the region's last bucket must be out before it is reused
        Slice gradient = _ops.PoolSlice(_slots.Layout.Slots[slot]);
        _device.StagePieces(gradient, chunk, _slots.SegmentElements, _region * _regionElements + _pendingSegment);
        _ops.Inner.Zero(gradient); // the pool region serves the next slot or micro-batch
        _pending.Add(slot);
        _pendingSegment += chunk;
        if (_slots.FillsReduceBucket(_pendingSegment)) CloseBucketDuringBackward();
    }

    private void CloseBucketDuringBackward()
    {
        CloseBucket();
        _duringThisPass++;
    }

    /// <summary>
    /// Ends a backward pass (on every rank): reduces the slots still staged, then completes every reduction and adds
    /// this rank's pieces to the partition's gradients, so they are all there when it returns.
    /// </summary>
    public void FlushReductions()
    {
        CloseBucket();
        for (int k = 1; k <= _reducing.Length; k++) CompleteReduction((_region + k) % _reducing.Length); // oldest first
        (BucketsDuringBackward, _duringThisPass) = (_duringThisPass, 0);
    }

    /// <summary>
    /// Buckets of the last backward pass whose reduction was queued while backward still ran (the rest are queued by
    /// <see cref="FlushReductions"/>).
    /// </summary>
    public int BucketsDuringBackward { get; private set; }

    private int _duringThisPass;

    /// <summary>Queues the reduction of the current region's staged slots and moves on to the next region.</summary>
    private void CloseBucket()
    {
        if (_pending.Count == 0) return;
        long at = _region * _regionElements;
        DeviceCollectiveTicket ticket = _collective is null ? DeviceCollectiveTicket.None : _device.ReduceScatterStaging(_collective, _slots.SegmentElements, at);
        _reducing[_region] = new Bucket(_pending.ToArray(), ticket);
        ReduceBuckets++;
        _pending.Clear();
        _pendingSegment = 0;
        _region = (_region + 1) % _reducing.Length;
    }

    /// <summary>Waits for a region's queued reduction, then adds this rank's averaged pieces to the partition's gradients.</summary>
    private void CompleteReduction(int region)
    {
        if (_reducing[region] is not { } bucket) return;
        _collective?.Complete(bucket.Ticket);
        long at = region * _regionElements + _rank * _slots.SegmentElements;
        foreach (int slot in bucket.Slots)
        {
            _device.AccumulateStaged(at, _slots.OwnedOffset(slot), _slots.OwnedPieceLength(slot));
            at += _slots.PieceLength(slot);
        }
        _reducing[region] = null;
    }

    /// <summary>Slots whose pieces a queued reduction averages, in staging order.</summary>
    private sealed record Bucket(int[] Slots, DeviceCollectiveTicket Ticket);

    /// <summary>ZeRO-2: every slot, from every rank's partition working copy into the parameter arena.</summary>
    public void GatherParameters() => GatherInto(_allSlots, _layoutOffsets);

    /// <summary>
    /// All-gathers <paramref name="slots"/> from every rank's partition working copy, slot k into the parameter arena at
    /// <paramref name="targetOffsets"/>[k], in buckets of consecutive entries (as <see cref="SlotSharding.GatherSlots"/>
    /// groups them). Not while gradients are staged (the buckets share the staging).
    /// </summary>
    public void GatherInto(ReadOnlySpan<int> slots, ReadOnlySpan<long> targetOffsets)
    {
        if (_pending.Count > 0 || Array.Exists(_reducing, b => b is not null))
            throw new InvalidOperationException("parameters are gathered while gradients are staged: FlushReductions must end every backward");
        for (int first = 0; first < slots.Length;)
        {
            // A bucket's segment fits the staging's: both are bounded by allgather_bucket_size / ranks or a single piece.
            int end = _slots.GatherBucketEnd(slots, first);
            ReadOnlySpan<int> bucket = slots[first..end];
            long segment = SegmentOf(bucket);
            StageOwnedPieces(bucket, _rank * segment);
            if (_collective is not null) _collective.Complete(_device.AllGatherStaging(_collective, segment));
            GatherBuckets++;
            long at = 0;
            for (int k = first; k < end; k++)
            {
                long length = _slots.Layout.Slots[slots[k]].Length;
                _device.UnstagePieces(new Slice(Arena.Parameters, targetOffsets[k], length), _slots.PieceLength(slots[k]), segment, at);
                at += _slots.PieceLength(slots[k]);
            }
            first = end;
        }
    }

    /// <summary>
    /// ZeRO-3: gathers one slot from every rank's piece into <paramref name="destination"/> (its resident region),
    /// through the staging's single-slot region, so it may run while a gradient bucket is pending.
    /// </summary>
    public void GatherSlot(int slot, Slice destination)
    {
        long chunk = _slots.PieceLength(slot);
        if (StagingElements - _slotRegion < chunk * _ranks)
            throw new InvalidOperationException("single-slot gathers need the ZeRO-3 staging: construct with gathersDuringBackward");
        _device.StageOwnedParameters(_slots.OwnedOffset(slot), _slots.OwnedPieceLength(slot), _slotRegion + _rank * chunk);
        if (_collective is not null) _collective.Complete(_device.AllGatherStaging(_collective, chunk, _slotRegion));
        GatherBuckets++;
        // Piece r sits at r × chunk in the region, so the slot is the region's first elements in order.
        _device.UnstagePieces(destination, chunk, chunk, _slotRegion);
    }

    /// <summary>ZeRO-3: elements of the staging's prefetch region.</summary>
    public long PrefetchElements { get; }

    /// <summary>A group's segment is bounded by the prefetch region alone.</summary>
    public long MaxGroupSegment => long.MaxValue;

    /// <summary>
    /// Stages this rank's pieces of <paramref name="slots"/> and queues their all-gather into the prefetch region at
    /// <paramref name="at"/>, without waiting: the layers before run while it moves (<see cref="CopyGathered"/> waits for it).
    /// </summary>
    public int GatherGroup(ReadOnlySpan<int> slots, int at)
    {
        long segment = SegmentOf(slots);
        long start = at, end = at + segment * _ranks;
        CompletePrefetches(start, end); // a group gathered there before must be out first
        StageOwnedPieces(slots, _prefetchRegion + at + _rank * segment);
        if (_collective is not null) _prefetching.Add((start, end, _device.AllGatherStaging(_collective, segment, _prefetchRegion + at)));
        GatherBuckets++;
        return checked((int)segment);
    }

    public void CopyGathered(int slot, int group, int segment, int at, Slice destination)
    {
        CompletePrefetches(group, group + 1);
        _device.UnstagePieces(destination, _slots.PieceLength(slot), segment, _prefetchRegion + group + at);
    }

    /// <summary>One rank's segment of a gather of <paramref name="slots"/>: their pieces, padded, end to end.</summary>
    private long SegmentOf(ReadOnlySpan<int> slots)
    {
        long segment = 0;
        foreach (int slot in slots) segment += _slots.PieceLength(slot);
        return segment;
    }

    /// <summary>Copies this rank's piece of each slot, in order, from its partition's working copy to staging[<paramref name="position"/> ..].</summary>
    private void StageOwnedPieces(ReadOnlySpan<int> slots, long position)
    {
        foreach (int slot in slots)
        {
            _device.StageOwnedParameters(_slots.OwnedOffset(slot), _slots.OwnedPieceLength(slot), position);
            position += _slots.PieceLength(slot);
        }
    }

    /// <summary>Waits for the queued prefetch gathers whose part of the prefetch region meets [start, end).</summary>
    private void CompletePrefetches(long start, long end)
    {
        for (int i = _prefetching.Count - 1; i >= 0; i--)
        {
            var (from, to, ticket) = _prefetching[i];
            if (from >= end || to <= start) continue;
            _collective!.Complete(ticket);
            _prefetching.RemoveAt(i);
        }
    }

    public void GatherAlone(int slot, Slice destination) => GatherSlot(slot, destination);
}
