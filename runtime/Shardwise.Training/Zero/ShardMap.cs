using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// The ZeRO shard map: the flat parameter layout cut into <see cref="Ranks"/> equal contiguous partitions
/// (padded to a multiple of 16 elements each), rank r owning [r·P, (r+1)·P). Because the layout is fixed at build
/// time, the map is a pure function of (layout, ranks): re-slicing a checkpoint for another rank count needs no
/// metadata beyond the layout.
/// </summary>
public sealed class ShardMap
{
    public const int AlignmentElements = 16;

    public ShardMap(ParameterLayout layout, int ranks)
    {
        if (ranks < 1) throw new ArgumentOutOfRangeException(nameof(ranks), ranks, "at least one rank");
        Layout = layout;
        Ranks = ranks;
        long perRank = (layout.TotalElements + ranks - 1) / ranks;
        PartitionElements = (perRank + AlignmentElements - 1) / AlignmentElements * AlignmentElements;
    }

    public ParameterLayout Layout { get; }

    public int Ranks { get; }

    /// <summary>Elements per partition (P).</summary>
    public long PartitionElements { get; }

    /// <summary>P × ranks: the flat buffer padded so that every partition has the same size.</summary>
    public long PaddedElements => PartitionElements * Ranks;

    public long Start(int rank) => rank * PartitionElements;

    /// <summary>The part of rank's partition that holds real parameters (the last partition may be shorter).</summary>
    public long OwnedLength(int rank) => Math.Clamp(Layout.TotalElements - Start(rank), 0, PartitionElements);

    /// <summary>Which ranges of which parameters a rank owns: (parameter, first element, element count).</summary>
    public IEnumerable<(ParameterSlot Slot, long From, long Count)> Owned(int rank)
    {
        long start = Start(rank), end = start + PartitionElements;
        foreach (var slot in Layout.Slots)
        {
            long from = Math.Max(start, slot.Offset), to = Math.Min(end, slot.Offset + slot.Length);
            if (from < to) yield return (slot, from - slot.Offset, to - from);
        }
    }

    /// <summary>The shard map as stable text for <c>plan</c>.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append(string.Format(CultureInfo.InvariantCulture,
            "ZeRO shard map: {0:N0} elements in {1} partitions of {2:N0} (padded to {3:N0})\n",
            Layout.TotalElements, Ranks, PartitionElements, PaddedElements));
        for (int rank = 0; rank < Ranks; rank++)
        {
            text.Append(string.Format(CultureInfo.InvariantCulture, "  rank {0}: [{1:N0}, {2:N0})\n", rank, Start(rank), Start(rank) + PartitionElements));
            foreach (var (slot, from, count) in Owned(rank))
            {
                string part = count == slot.Length ? "whole" : string.Format(CultureInfo.InvariantCulture, "[{0:N0}, {1:N0})", from, from + count);
                text.Append(string.Format(CultureInfo.InvariantCulture, "    {0,-40} {1}\n", slot.Name, part));
            }
        }
        return text.ToString();
    }
}
