using System;
using System.Collections.Generic;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>How a rank's optimizer partition maps onto the flat layout.</summary>
public enum PartitionScheme
{
    /// <summary>Stage 1: one contiguous range of the layout per rank (<see cref="ShardMap"/>).</summary>
    Flat,
    /// <summary>Stages 2–3: piece r of every parameter (<see cref="SlotSharding"/>).</summary>
    Slots,
}

/// <summary>
/// Which layout ranges a rank's partition holds, as a pure function of (layout, ranks, scheme, rank): checkpoints
/// store each rank's partition as written and any number of ranks re-slices them on load.
/// </summary>
public static class PartitionSegments
{
    /// <summary>(layout offset, offset in the rank's partition, length) for every range the rank owns.</summary>
    public static IEnumerable<(long LayoutOffset, long OwnedOffset, long Length)> For(ParameterLayout layout, int ranks, PartitionScheme scheme, int rank)
    {
        if (scheme == PartitionScheme.Flat)
        {
            var map = new ShardMap(layout, ranks);
            long length = map.OwnedLength(rank);
            if (length > 0) yield return (map.Start(rank), 0, length);
            yield break;
        }

        long owned = 0;
        foreach (var slot in layout.Slots)
        {
            long chunk = (slot.Length + ranks - 1) / ranks;
            long length = Math.Clamp(slot.Length - rank * chunk, 0, chunk);
            if (length > 0) yield return (slot.Offset + rank * chunk, owned, length);
            owned += length;
        }
    }
}

/// <summary>Where a piece of a rank's partition lies in the layout.</summary>
public static class OwnedRanges
{
    /// <summary>
    /// For partition elements [<paramref name="start"/>, + <paramref name="count"/>) of a rank whose layout ranges are
    /// <paramref name="segments"/>: each run as (layout offset, offset within the piece, length), in partition order.
    /// </summary>
    public static IEnumerable<(long LayoutOffset, int At, int Count)> Within(
        IEnumerable<(long LayoutOffset, long OwnedOffset, long Length)> segments, long start, int count)
    {
        long end = start + count;
        foreach (var (layoutOffset, ownedOffset, length) in segments)
        {
            long from = Math.Max(start, ownedOffset), to = Math.Min(end, ownedOffset + length);
            if (from < to) yield return (layoutOffset + (from - ownedOffset), (int)(from - start), (int)(to - from));
        }
    }
}
