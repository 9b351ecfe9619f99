using System;

namespace Shardwise.Distributed;

/// <summary>
/// Argument checks shared by every communicator, so a wrong length or rank fails the same way (ArgumentException,
/// before any peer is involved) whichever implementation runs.
/// </summary>
public static class CollectiveArguments
{
    /// <summary>MPI guarantees tags up to 32767 (MPI_TAG_UB may be larger, but not portably).</summary>
    public const int MaxTag = 32767;

    public static void ReduceScatter(int inputLength, int outputLength, int size)
    {
        if ((long)outputLength * size != inputLength)
            throw new ArgumentException(
                $"ReduceScatterSum needs input.Length = Size × output.Length = {size} × {outputLength}, got {inputLength}.");
    }

    public static void AllGather(int inputLength, int outputLength, int size)
    {
        if ((long)inputLength * size != outputLength)
            throw new ArgumentException(
                $"AllGather needs output.Length = Size × input.Length = {size} × {inputLength}, got {outputLength}.");
    }

    public static void Root(int root, int size)
    {
        if (root < 0 || root >= size)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"Broadcast root must be a rank in [0, {size}).");
    }

    public static void Peer(int peer, int rank, int size)
    {
        if (peer < 0 || peer >= size || peer == rank)
            throw new ArgumentOutOfRangeException(nameof(peer), peer,
                $"peer must be another rank of the group: in [0, {size}) and not this rank ({rank}).");
    }

    public static void Tag(int tag)
    {
        if (tag < 0 || tag > MaxTag)
            throw new ArgumentOutOfRangeException(nameof(tag), tag, $"tag must be in [0, {MaxTag}].");
    }

    public static void Color(int color)
    {
        if (color < 0)
            throw new ArgumentOutOfRangeException(nameof(color), color, "Split needs a color ≥ 0 (every rank joins some group).");
    }
}
