using System;
using Shardwise.Distributed;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO-2/3 partitioning per parameter, as DeepSpeed does it: every slot of the layout is cut into N equal pieces
/// (the last padded), rank r owning piece r of every slot. A slot's gradient is reduce-scattered as soon as it is
/// final, straight into the owners' accumulators, so no rank ever holds the full gradient; after the optimizer step
/// each slot is all-gathered back. This rank's pieces, concatenated in layout order, form its optimizer partition.
/// </summary>
public sealed class SlotSharding
{
    private readonly ICommunicator _communicator;
    private readonly long[] _chunk;        // piece size per slot
    private readonly long[] _ownedOffset;  // where this rank's piece of each slot starts in the owned buffer
    private readonly long[] _ownedLength;  // length of this rank's piece of each slot (0 past the slot's end)
    private readonly float[] _staging;     // communication buffer: one slot, padded to N pieces
    private readonly float[] _piece;       // communication buffer: one piece

    public SlotSharding(ParameterLayout layout, ICommunicator communicator)
    {
        Layout = layout;
        _communicator = communicator;
        int ranks = communicator.Size, rank = communicator.Rank, slots = layout.Slots.Count;
        _chunk = new long[slots];
        _ownedOffset = new long[slots];
        _ownedLength = new long[slots];
        long owned = 0, largest = 0;
        for (int i = 0; i < slots; i++)
        {
            long length = layout.Slots[i].Length;
            _chunk[i] = (length + ranks - 1) / ranks;
            _ownedOffset[i] = owned;
            _ownedLength[i] = Math.Clamp(length - rank * _chunk[i], 0, _chunk[i]);
            owned += _ownedLength[i];
            largest = Math.Max(largest, _chunk[i]);
            PaddedElements += _chunk[i] * ranks;
        }
        OwnedLength = owned;
        _staging = new float[largest * ranks];
        _piece = new float[largest];
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

    /// <summary>Bytes of the communication buffers a rank holds for <paramref name="ranks"/> ranks (for plans).</summary>
    public static long BufferBytesOf(ParameterLayout layout, int ranks)
    {
        long largest = 0;
        foreach (var slot in layout.Slots) largest = Math.Max(largest, (slot.Length + ranks - 1) / ranks);
        return (largest * ranks + largest) * sizeof(float);
    }

    public ICommunicator Communicator => _communicator;

    /// <summary>Elements of this rank's pieces: its optimizer partition.</summary>
    public long OwnedLength { get; }

    /// <summary>Σ over slots of N × piece: what the collectives move, padding included.</summary>
    public long PaddedElements { get; }

    public long BufferBytes => (_staging.LongLength + _piece.LongLength) * sizeof(float);

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
    /// Reduce-scatters one slot's gradient and adds <paramref name="scale"/> × this rank's reduced piece to its
    /// accumulator. Every rank calls it for the same slots in the same (generated, static) order.
    /// </summary>
    public void ReduceSlot(int slot, ReadOnlySpan<float> gradient, Span<float> accumulator, float scale)
    {
        int ranks = _communicator.Size;
        long chunk = _chunk[slot];
        var padded = _staging.AsSpan(0, (int)(chunk * ranks));
        gradient.CopyTo(padded);
        padded.Slice(gradient.Length).Clear();
        var piece = _piece.AsSpan(0, (int)chunk);
        if (ranks == 1) padded.CopyTo(piece);
        else _communicator.ReduceScatterSum(padded, piece);
        var target = accumulator.Slice((int)_ownedOffset[slot], (int)_ownedLength[slot]);
        for (int i = 0; i < target.Length; i++) target[i] += scale * piece[i];
    }

    /// <summary>All-gathers every slot from its owners' pieces into a full-layout buffer.</summary>
    public void GatherInto(ReadOnlySpan<float> owned, Span<float> full)
    {
        for (int i = 0; i < _chunk.Length; i++)
            GatherSlot(i, owned, full.Slice((int)Layout.Slots[i].Offset, (int)Layout.Slots[i].Length));
    }

    /// <summary>All-gathers one slot from its owners' pieces into <paramref name="destination"/> (the slot's length).</summary>
    public void GatherSlot(int slot, ReadOnlySpan<float> owned, Span<float> destination)
    {
        int ranks = _communicator.Size;
        long chunk = _chunk[slot];
        var piece = _piece.AsSpan(0, (int)chunk);
        owned.Slice((int)_ownedOffset[slot], (int)_ownedLength[slot]).CopyTo(piece);
        piece.Slice((int)_ownedLength[slot]).Clear();
        var padded = _staging.AsSpan(0, (int)(chunk * ranks));
        if (ranks == 1) piece.CopyTo(padded);
        else _communicator.AllGather(piece, padded);
        padded.Slice(0, destination.Length).CopyTo(destination);
    }

    /// <summary>A full-layout copy of per-piece data (checkpoints). Allocates: called only when saving.</summary>
    public float[] GatherFull(ReadOnlySpan<float> owned)
    {
        var full = new float[Layout.TotalElements];
        GatherInto(owned, full);
        return full;
    }
}
