using System;
using System.Collections.Generic;
using Shardwise.Distributed;
using Shardwise.Training.Config;
using Shardwise.Plans;
using Shardwise.Precision;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO-2/3 partitioning per parameter, as DeepSpeed does it: every slot of the layout is cut into N equal pieces
/// (the last padded), rank r owning piece r of every slot. This rank's pieces, concatenated in layout order, form its
/// optimizer partition.
/// <para>
/// Gradients: as slots become final in backward (a static order, the same on every rank) their pieces are copied into
/// a bucket laid out rank-major — rank r's segment is piece r of every slot in the bucket, in arrival order — and one
/// reduce-scatter per reduce_bucket_size elements hands each rank the sums of its pieces, so no rank ever holds the
/// full gradient. Parameters: after the optimizer step consecutive slots are all-gathered in groups of up to
/// allgather_bucket_size elements. Sizes count padded elements (N × piece per slot), which is what travels; a slot
/// larger than a bucket goes alone. Each element is summed in the same rank order whatever the bucket size, so the
/// results do not depend on it.
/// </para>
/// </summary>
public sealed class SlotSharding
{
    private readonly ICommunicator _communicator;
    private readonly long[] _chunk;        // piece size per slot
    private readonly long[] _ownedOffset;  // where this rank's piece of each slot starts in the owned buffer
    private readonly long[] _ownedLength;  // length of this rank's piece of each slot (0 past the slot's end)
    private readonly long _reduceBucket;   // padded elements per gradient bucket
    private readonly long _gatherBucket;   // padded elements per parameter bucket
    private readonly long _stride;         // elements of one rank's segment in the staging buffer
    private readonly float[] _staging;     // N segments of _stride: the pending gradient bucket, or a parameter bucket
    private readonly float[] _piece;       // one segment: what a rank sends to, or receives from, a collective
    private readonly float[] _slotStaging; // ZeRO-3: one padded slot, gathered during backward while a gradient bucket is pending
    private readonly int[] _allSlots;
    private readonly long[] _layoutOffsets;
    private readonly List<int> _pending = new(); // slots in the gradient bucket, in arrival order
    private long _pendingSegment;                // Σ pieces of the pending slots: one rank's share of the bucket
    private float[]? _pendingAccumulator;
    private float _pendingScale;
    private readonly QuantizedAllGather? _quantizedGather;         // ZeRO++ qwZ: ZeRO-3's parameter gathers as int8
    private readonly QuantizedReduceScatter? _quantizedReduction;  // ZeRO++ qgZ: the gradient buckets as int4
    private readonly GradientReduction? _reduction;                // otherwise: communication_data_type and the scaling around the wire

    /// <param name="reduceBucketElements">zero_optimization.reduce_bucket_size.</param>
    /// <param name="allgatherBucketElements">zero_optimization.allgather_bucket_size.</param>
    /// <param name="gathersDuringBackward">ZeRO-3: single slots are gathered (<see cref="GatherSlot"/>) while a gradient bucket fills.</param>
    /// <param name="quantization">ZeRO++: which of ZeRO-3's transfers travel quantized (null: none).</param>
    /// <param name="streamedGathersOnly">
    /// Only <see cref="GatherSlot"/> and <see cref="GatherRankMajor"/> are used (hpZ's group copy): no bucket staging is held.
    /// </param>
    /// <param name="nodes">hpZ's nodes, over which qgZ reduces hierarchically (null: one level).</param>
    /// <param name="communication">communication_data_type, prescale_gradients, gradient_predivide_factor (null: the defaults; qgZ replaces them).</param>
    public SlotSharding(ParameterLayout layout, ICommunicator communicator, long reduceBucketElements, long allgatherBucketElements,
        bool gathersDuringBackward = false, TransferQuantization? quantization = null, bool streamedGathersOnly = false, NodeGroups? nodes = null,
        GradientCommunicationConfig? communication = null)
    {
        Layout = layout;
        _communicator = communicator;
        int ranks = communicator.Size, rank = communicator.Rank, slots = layout.Slots.Count;
        _chunk = new long[slots];
        _ownedOffset = new long[slots];
        _ownedLength = new long[slots];
        _allSlots = new int[slots];
        _layoutOffsets = new long[slots];
        long owned = 0;
        for (int i = 0; i < slots; i++)
        {
            long length = layout.Slots[i].Length;
            _chunk[i] = (length + ranks - 1) / ranks;
            _ownedOffset[i] = owned;
            _ownedLength[i] = Math.Clamp(length - rank * _chunk[i], 0, _chunk[i]);
            owned += _ownedLength[i];
            PaddedElements += _chunk[i] * ranks;
            _allSlots[i] = i;
            _layoutOffsets[i] = layout.Slots[i].Offset;
        }
        OwnedLength = owned;
        _reduceBucket = Math.Max(1, reduceBucketElements);
        _gatherBucket = Math.Max(1, allgatherBucketElements);
        _stride = SegmentElementsOf(layout, ranks, reduceBucketElements, allgatherBucketElements);
        // One rank owns every slot whole: its gradients go straight into the accumulator and its gathers are copies,
        // so it holds no communication buffers (ZeRO on one GPU, as with CPU offload, is a common setup).
        bool alone = ranks == 1;
        _staging = alone || streamedGathersOnly ? Array.Empty<float>() : new float[_stride * ranks];
        _piece = alone ? Array.Empty<float>() : new float[_stride];
        _slotStaging = gathersDuringBackward && !alone ? new float[LargestPiece(layout, ranks) * ranks] : Array.Empty<float>();
        if (!alone && quantization is { } quantized)
        {
            // ZeRO-3's gathers (single slots and prefetch groups) and reductions both fit one segment per rank.
            if (quantized.Weights) _quantizedGather = new QuantizedAllGather(communicator, _stride, quantized.Storage);
            if (quantized.Gradients) _quantizedReduction = new QuantizedReduceScatter(communicator, _stride, nodes);
        }
        if (!alone && !streamedGathersOnly && _quantizedReduction is null)
            _reduction = new GradientReduction(communicator, communication ?? GradientCommunicationConfig.Default, _stride * ranks);
    }

    public ParameterLayout Layout { get; }

    /// <summary>Elements of <paramref name="rank"/>'s pieces for <paramref name="ranks"/> ranks, without a communicator (for plans).</summary>
    public static long OwnedLengthOf(ParameterLayout layout, int ranks, int rank)
    {
        long owned = 0;
        foreach (var slot in layout.Slots)
        {
            long chunk = (slot.Length + ranks - 1) / ranks;
            owned += Math.Clamp(slot.Length - rank * chunk, 0, chunk);
        }
        return owned;
    }

    /// <summary>
    /// Bytes of the communication buffers a rank holds for <paramref name="ranks"/> ranks (for plans): a staging buffer
    /// of N segments and one segment, a segment holding the larger bucket's share (at least the largest piece, at most
    /// the whole model's), plus at ZeRO-3 one padded slot for the gathers made during backward.
    /// </summary>
    public static long BufferBytesOf(ParameterLayout layout, int ranks, long reduceBucketElements, long allgatherBucketElements, bool gathersDuringBackward,
        TransferQuantization? quantization = null, bool streamedGathersOnly = false, GradientCommunicationConfig? communication = null)
    {
        if (ranks == 1) return 0;
        long stride = SegmentCapacity(layout, ranks, Math.Max(Math.Max(1, reduceBucketElements), Math.Max(1, allgatherBucketElements)));
        long slot = gathersDuringBackward ? LargestPiece(layout, ranks) * ranks : 0;
        long quantized = (quantization?.Weights == true ? QuantizedAllGather.BufferBytesOf(ranks, stride) : 0)
            + (quantization?.Gradients == true ? QuantizedReduceScatter.BufferBytesOf(ranks, stride, quantization.RanksPerNode) : 0);
        if (quantization?.Gradients != true && !streamedGathersOnly && communication is not null)
            quantized += GradientReduction.BufferBytesFor(communication, ranks, stride * ranks);
        return ((streamedGathersOnly ? 0 : stride * ranks) + stride + slot) * sizeof(float) + quantized;
    }

    /// <summary>
    /// Elements of the device staging of ZeRO-2/3 over a device collective (for plans): one bucket segment per rank in
    /// each of <paramref name="gradientRegions"/> (two with overlap_comm: DeviceSlotSharding.GradientRegions), and at
    /// ZeRO-3 one largest piece per rank for the single-slot gathers made while a gradient bucket is pending.
    /// </summary>
    public static long StagingElementsOf(ParameterLayout layout, int ranks, long reduceBucketElements, long allgatherBucketElements,
        bool gathersDuringBackward, int gradientRegions = 1)
        => (gradientRegions * SegmentElementsOf(layout, ranks, reduceBucketElements, allgatherBucketElements)
            + (gathersDuringBackward ? LargestPiece(layout, ranks) : 0)) * ranks;

    /// <summary>One rank's segment of the bucket staging (<see cref="SegmentElements"/>), from the layout and the bucket sizes.</summary>
    public static long SegmentElementsOf(ParameterLayout layout, int ranks, long reduceBucketElements, long allgatherBucketElements)
        => SegmentCapacity(layout, ranks, Math.Max(Math.Max(1, reduceBucketElements), Math.Max(1, allgatherBucketElements)));

    /// <summary>
    /// The most one rank's segment of a bucket can hold: a bucket closes once it reaches its size, so several slots
    /// share at most ⌊bucket / N⌋ per rank, and a slot larger than that goes alone; never more than the whole model.
    /// </summary>
    private static long SegmentCapacity(ParameterLayout layout, int ranks, long bucketElements)
    {
        long all = 0;
        foreach (var slot in layout.Slots) all += (slot.Length + ranks - 1) / ranks;
        return Math.Max(LargestPiece(layout, ranks), Math.Min(bucketElements / ranks, all));
    }

    internal static long LargestPiece(ParameterLayout layout, int ranks)
    {
        long largest = 0;
        foreach (var slot in layout.Slots) largest = Math.Max(largest, (slot.Length + ranks - 1) / ranks);
        return largest;
    }

    public ICommunicator Communicator => _communicator;

    /// <summary>Elements of this rank's pieces: its optimizer partition.</summary>
    public long OwnedLength { get; }

    /// <summary>Σ over slots of N × piece: what the collectives move, padding included.</summary>
    public long PaddedElements { get; }

    public long BufferBytes => (_staging.LongLength + _piece.LongLength + _slotStaging.LongLength) * sizeof(float)
        + (_quantizedGather?.BufferBytes ?? 0) + (_quantizedReduction?.BufferBytes ?? 0) + (_reduction?.BufferBytes ?? 0);

    /// <summary>The gradient buckets' sums when not quantized (communication_data_type and the scaling around the wire); null on one rank.</summary>
    public GradientReduction? Reduction => _reduction;

    /// <summary>Gradient buckets reduce-scattered so far (one collective each).</summary>
    public int ReduceBuckets { get; private set; }

    /// <summary>Parameter buckets all-gathered so far (one collective each), single-slot gathers included.</summary>
    public int GatherBuckets { get; private set; }

    /// <summary>Slots whose gradient waits in the bucket for the next reduce-scatter.</summary>
    public int PendingSlots => _pending.Count;

    /// <summary>Where this rank's piece of <paramref name="slot"/> starts in its owned buffer.</summary>
    public long OwnedOffset(int slot) => _ownedOffset[slot];

    /// <summary>Elements of this rank's piece of <paramref name="slot"/> (short or 0 at the end of the slot).</summary>
    public long OwnedPieceLength(int slot) => _ownedLength[slot];

    /// <summary>The largest piece of any slot: one rank's share of a single-slot gather.</summary>
    public long LargestPieceLength => LargestPiece(Layout, _communicator.Size);

    /// <summary>Elements one rank's segment of a bucket can hold (a staging buffer holds one per rank).</summary>
    public long SegmentElements => _stride;

    /// <summary>
    /// Whether <paramref name="slot"/>'s pieces would take a gradient bucket that already holds
    /// <paramref name="pendingSegment"/> elements per rank past reduce_bucket_size (padded): it is reduced first.
    /// </summary>
    public bool OverflowsReduceBucket(long pendingSegment, int slot) => (pendingSegment + _chunk[slot]) * _communicator.Size > _reduceBucket;

    /// <summary>Whether a gradient bucket holding <paramref name="pendingSegment"/> elements per rank is full: it is reduced now.</summary>
    public bool FillsReduceBucket(long pendingSegment) => pendingSegment * _communicator.Size >= _reduceBucket;

    /// <summary>This rank's piece of <paramref name="slot"/> within an owned buffer (empty when the slot ends before it).</summary>
    public Span<float> OwnedPiece(Span<float> owned, int slot) => owned.Slice((int)_ownedOffset[slot], (int)_ownedLength[slot]);

    /// <summary>The layout offset where this rank's piece of <paramref name="slot"/> starts.</summary>
    public long OwnedPieceLayoutOffset(int slot) => Layout.Slots[slot].Offset + _communicator.Rank * _chunk[slot];

    /// <summary>Copies this rank's pieces of a full-layout buffer into its owned buffer.</summary>
    public void ExtractOwned(ReadOnlySpan<float> full, Span<float> owned)
    {
        int rank = _communicator.Rank;
        for (int i = 0; i < _chunk.Length; i++)
        {
            long from = Layout.Slots[i].Offset + rank * _chunk[i];
            full.Slice((int)from, (int)_ownedLength[i]).CopyTo(owned.Slice((int)_ownedOffset[i], (int)_ownedLength[i]));
        }
    }

    /// <summary>
    /// Adds one slot's final gradient to the gradient bucket; once the bucket is full, reduce-scatters it and adds
    /// <paramref name="scale"/> × this rank's reduced pieces to <paramref name="accumulator"/>. The gradient is copied,
    /// so the caller may clear it at once. Every rank calls it for the same slots in the same (generated, static)
    /// order, and calls <see cref="FlushReductions"/> at the same point after the last one.
    /// </summary>
    public void ReduceSlot(int slot, ReadOnlySpan<float> gradient, float[] accumulator, float scale)
    {
        int ranks = _communicator.Size;
        if (ranks == 1)
        {
            // The whole slot is this rank's piece: the same sum the staged path makes, without the copies.
            var owned = accumulator.AsSpan((int)_ownedOffset[slot], gradient.Length);
            for (int i = 0; i < owned.Length; i++) owned[i] += scale * gradient[i];
            return;
        }
        long chunk = _chunk[slot];
        if (_pending.Count > 0
            && (OverflowsReduceBucket(_pendingSegment, slot) || !ReferenceEquals(accumulator, _pendingAccumulator) || scale != _pendingScale))
            FlushReductions();

        // Piece r goes after the pieces already in rank r's segment; the segments are packed together at the flush.
        for (int r = 0; r < ranks; r++)
        {
            long from = Math.Min(r * chunk, gradient.Length); // a small slot may end before rank r's piece
            int length = (int)Math.Min(gradient.Length - from, chunk);
            var destination = _staging.AsSpan((int)(r * _stride + _pendingSegment), (int)chunk);
            gradient.Slice((int)from, length).CopyTo(destination);
            destination.Slice(length).Clear();
        }
        _pending.Add(slot);
        _pendingSegment += chunk;
        _pendingAccumulator = accumulator;
        _pendingScale = scale;
        if (FillsReduceBucket(_pendingSegment)) FlushReductions();
    }

    /// <summary>Reduce-scatters the partial gradient bucket, if any (end of backward; every rank at the same point).</summary>
    public void FlushReductions()
    {
        if (_pending.Count == 0) return;
        int ranks = _communicator.Size;
        int segment = (int)_pendingSegment;
        // Rank r's segment starts at r × stride while it fills; the collective wants it at r × segment. Moving the
        // segments down in rank order never overwrites one not yet moved.
        for (int r = 1; r < ranks; r++)
            _staging.AsSpan((int)(r * _stride), segment).CopyTo(_staging.AsSpan(r * segment, segment));
        var padded = _staging.AsSpan(0, segment * ranks);
        var piece = _piece.AsSpan(0, segment);
        if (_quantizedReduction is not null) _quantizedReduction.ReduceScatterSum(padded, piece);
        else _reduction!.ReduceScatterSum(padded, piece);
        ReduceBuckets++;

        // This rank's pieces arrive in the order the slots became final, which is not the owned buffer's (layout) order.
        var accumulator = _pendingAccumulator!;
        float scale = _pendingScale;
        int at = 0;
        foreach (int slot in _pending)
        {
            var target = accumulator.AsSpan((int)_ownedOffset[slot], (int)_ownedLength[slot]);
            var reduced = piece.Slice(at, target.Length);
            for (int i = 0; i < target.Length; i++) target[i] += scale * reduced[i];
            at += (int)_chunk[slot];
        }
        _pending.Clear();
        _pendingSegment = 0;
        _pendingAccumulator = null;
    }

    /// <summary>All-gathers every slot from its owners' pieces into a full-layout buffer, in buckets of consecutive slots.</summary>
    public void GatherInto(ReadOnlySpan<float> owned, Span<float> full) => GatherSlots(_allSlots, owned, full, _layoutOffsets);

    /// <summary>
    /// All-gathers <paramref name="slots"/> from their owners' pieces, slot k into
    /// <paramref name="target"/>[<paramref name="targetOffsets"/>[k] ..] (the slot's length), grouping consecutive
    /// entries into buckets of up to allgather_bucket_size elements: one collective per bucket. Every rank passes the
    /// same slots; not while a gradient bucket is pending (it shares the staging buffer).
    /// </summary>
    public void GatherSlots(ReadOnlySpan<int> slots, ReadOnlySpan<float> owned, Span<float> target, ReadOnlySpan<long> targetOffsets)
        => GatherSlots(slots, owned, null, target, targetOffsets);

    /// <summary><see cref="GatherSlots(ReadOnlySpan{int}, ReadOnlySpan{float}, Span{float}, ReadOnlySpan{long})"/> with the pieces read from <paramref name="pieces"/>.</summary>
    public void GatherSlots(ReadOnlySpan<int> slots, IOwnedPieces pieces, Span<float> target, ReadOnlySpan<long> targetOffsets)
        => GatherSlots(slots, default, pieces, target, targetOffsets);

    /// <summary>This rank's piece of <paramref name="slot"/>: from <paramref name="source"/> when given, else a slice of <paramref name="owned"/>.</summary>
    private ReadOnlySpan<float> PieceOf(ReadOnlySpan<float> owned, IOwnedPieces? source, int slot)
        => source is not null ? source.Piece(slot) : owned.Slice((int)_ownedOffset[slot], (int)_ownedLength[slot]);

    private void GatherSlots(ReadOnlySpan<int> slots, ReadOnlySpan<float> owned, IOwnedPieces? source, Span<float> target, ReadOnlySpan<long> targetOffsets)
    {
        if (_pending.Count > 0)
            throw new InvalidOperationException("parameters are gathered while a gradient bucket is pending: FlushReductions must end every backward");
        int ranks = _communicator.Size;
        if (ranks == 1)
        {
            for (int k = 0; k < slots.Length; k++)
                PieceOf(owned, source, slots[k]).CopyTo(target.Slice((int)targetOffsets[k]));
            return;
        }
        for (int first = 0; first < slots.Length;)
        {
            // Pack this rank's pieces of the bucket's slots, each padded to its piece size.
            int end = GatherBucketEnd(slots, first);
            int segment = 0;
            for (int k = first; k < end; k++)
            {
                int slot = slots[k];
                var piece = _piece.AsSpan(segment, (int)_chunk[slot]);
                PieceOf(owned, source, slot).CopyTo(piece);
                piece.Slice((int)_ownedLength[slot]).Clear();
                segment += (int)_chunk[slot];
            }

            var gathered = _staging.AsSpan(0, segment * ranks);
            _communicator.AllGather(_piece.AsSpan(0, segment), gathered);
            GatherBuckets++;

            // Rank r's segment holds piece r of each slot: it lands at r × piece within the slot.
            for (int r = 0; r < ranks; r++)
            {
                int at = r * segment;
                for (int k = first; k < end; k++)
                {
                    int slot = slots[k];
                    long chunk = _chunk[slot];
                    int length = (int)Math.Clamp(Layout.Slots[slot].Length - r * chunk, 0, chunk);
                    if (length > 0) gathered.Slice(at, length).CopyTo(target.Slice((int)(targetOffsets[k] + r * chunk), length));
                    at += (int)chunk;
                }
            }
            first = end;
        }
    }

    /// <summary>
    /// Where the parameter bucket that starts at <paramref name="first"/> ends (exclusive): consecutive entries while the
    /// padded total stays within allgather_bucket_size; a slot larger than that goes alone.
    /// </summary>
    public int GatherBucketEnd(ReadOnlySpan<int> slots, int first)
    {
        int ranks = _communicator.Size, end = first + 1;
        long segment = _chunk[slots[first]];
        while (end < slots.Length && segment * ranks < _gatherBucket && (segment + _chunk[slots[end]]) * ranks <= _gatherBucket)
            segment += _chunk[slots[end++]];
        return end;
    }

    /// <summary>
    /// ZeRO-3: all-gathers one slot from its owners' pieces into <paramref name="destination"/> (the slot's length),
    /// through its own staging, since this happens during backward while a gradient bucket may be pending.
    /// </summary>
    public void GatherSlot(int slot, ReadOnlySpan<float> owned, Span<float> destination) => GatherSlot(slot, owned, null, destination);

    /// <summary><see cref="GatherSlot(int, ReadOnlySpan{float}, Span{float})"/> with the piece read from <paramref name="pieces"/>.</summary>
    public void GatherSlot(int slot, IOwnedPieces pieces, Span<float> destination) => GatherSlot(slot, default, pieces, destination);

    private void GatherSlot(int slot, ReadOnlySpan<float> owned, IOwnedPieces? source, Span<float> destination)
    {
        int ranks = _communicator.Size;
        long chunk = _chunk[slot];
        if (ranks == 1)
        {
            PieceOf(owned, source, slot)[..destination.Length].CopyTo(destination);
            return;
        }
        if (_slotStaging.Length < chunk * ranks)
            throw new InvalidOperationException("single-slot gathers need the ZeRO-3 staging: construct with gathersDuringBackward");
        var piece = _piece.AsSpan(0, (int)chunk);
        PieceOf(owned, source, slot).CopyTo(piece);
        piece.Slice((int)_ownedLength[slot]).Clear();
        var padded = _slotStaging.AsSpan(0, (int)(chunk * ranks));
        ParameterAllGather(piece, padded);
        GatherBuckets++;
        padded.Slice(0, destination.Length).CopyTo(destination);
    }

    /// <summary>The most elements of this rank's pieces one <see cref="GatherRankMajor"/> can send (its send buffer).</summary>
    public long MaxGatherSegment => _communicator.Size == 1 ? OwnedLength : _piece.Length;

    /// <summary>Elements of one rank's piece of <paramref name="slot"/> (the last rank's padded to it).</summary>
    public long PieceLength(int slot) => _chunk[slot];

    /// <summary>
    /// ZeRO-3 prefetch: all-gathers <paramref name="slots"/> in one collective into <paramref name="gathered"/>,
    /// rank-major: rank r's segment (this rank's Σ pieces long) holds its piece of each slot in the given order, each
    /// padded to the piece size; <see cref="CopyGathered"/> assembles a slot from it. Uses neither the gradient staging
    /// nor the single-slot one, so it may run while a gradient bucket is pending. Every rank passes the same slots.
    /// Returns the segment length.
    /// </summary>
    public int GatherRankMajor(ReadOnlySpan<int> slots, ReadOnlySpan<float> owned, Span<float> gathered) => GatherRankMajor(slots, owned, null, gathered);

    /// <summary><see cref="GatherRankMajor(ReadOnlySpan{int}, ReadOnlySpan{float}, Span{float})"/> with the pieces read from <paramref name="pieces"/>.</summary>
    public int GatherRankMajor(ReadOnlySpan<int> slots, IOwnedPieces pieces, Span<float> gathered) => GatherRankMajor(slots, default, pieces, gathered);

    private int GatherRankMajor(ReadOnlySpan<int> slots, ReadOnlySpan<float> owned, IOwnedPieces? source, Span<float> gathered)
    {
        int ranks = _communicator.Size, segment = 0;
        // One rank: its pieces are whole slots, written straight into the result.
        Span<float> send = ranks == 1 ? gathered : _piece;
        foreach (int slot in slots)
        {
            var piece = send.Slice(segment, (int)_chunk[slot]);
            PieceOf(owned, source, slot).CopyTo(piece);
            piece.Slice((int)_ownedLength[slot]).Clear();
            segment += (int)_chunk[slot];
        }
        if (ranks > 1)
        {
            ParameterAllGather(_piece.AsSpan(0, segment), gathered.Slice(0, segment * ranks));
            GatherBuckets++;
        }
        return segment;
    }

    /// <summary>ZeRO-3's gather of parameter pieces: quantized under qwZ, else exact.</summary>
    private void ParameterAllGather(ReadOnlySpan<float> piece, Span<float> gathered)
    {
        if (_quantizedGather is not null) _quantizedGather.AllGather(piece, gathered);
        else _communicator.AllGather(piece, gathered);
    }

    /// <summary>
    /// Copies <paramref name="slot"/> out of a <see cref="GatherRankMajor"/> result (segments of
    /// <paramref name="segment"/> elements, the slot's piece at <paramref name="at"/> in each) into
    /// <paramref name="destination"/> (the slot's length).
    /// </summary>
    public void CopyGathered(int slot, ReadOnlySpan<float> gathered, int segment, int at, Span<float> destination)
    {
        long chunk = _chunk[slot];
        for (int r = 0; r < _communicator.Size; r++)
        {
            int length = (int)Math.Clamp(Layout.Slots[slot].Length - r * chunk, 0, chunk);
            if (length > 0) gathered.Slice(r * segment + at, length).CopyTo(destination.Slice((int)(r * chunk), length));
        }
    }

    /// <summary>A full-layout copy of per-piece data (checkpoints). Allocates: called only when saving.</summary>
    public float[] GatherFull(ReadOnlySpan<float> owned)
    {
        var full = new float[Layout.TotalElements];
        GatherInto(owned, full);
        return full;
    }
}
