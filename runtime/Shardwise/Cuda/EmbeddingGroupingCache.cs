using System;

namespace Shardwise.Cuda;

/// <summary>
/// The row groupings (<see cref="EmbeddingRowGrouping"/>) of the last few id lists, each in its own region of one
/// device buffer. A model's position ids are the same every step, and the token ids of a micro-batch are seen twice
/// when embedding and head share a table: a list met again needs neither the host sort nor the upload. The upload is
/// synchronous (it waits for the queued GPU work), so skipping it also keeps the GPU from idling while the host sorts.
/// Regions are replaced least recently used first; the buffer itself is the caller's (sized for
/// <see cref="Entries"/> regions of <see cref="RegionInts"/> ints).
/// </summary>
internal sealed class EmbeddingGroupingCache
{
    public const int Entries = 4;

    private readonly int[][] ids = new int[Entries][];
    private readonly int[] lengths = new int[Entries];
    private readonly Layout[] layouts = new Layout[Entries];
    private readonly long[] lastUse = new long[Entries];
    private long clock;

    /// <summary>Ints per region: 3·rows + 1 for the largest id list (<see cref="EmbeddingRowGrouping.Reserve"/>).</summary>
    public int RegionInts { get; private set; }

    /// <summary>Id lists found already grouped, and the ones grouped and uploaded (for tests and reports).</summary>
    public long Hits { get; private set; }

    public long Misses { get; private set; }

    /// <summary>Forgets every entry (the device buffer moved or its regions changed size) and sets the region size.</summary>
    public void Reset(int regionInts)
    {
        RegionInts = regionInts;
        Array.Clear(lengths);
        for (int i = 0; i < Entries; i++) ids[i] = [];
        Array.Clear(lastUse);
    }

    /// <summary>The region holding <paramref name="rowIds"/>' grouping, if any.</summary>
    public bool TryFind(ReadOnlySpan<int> rowIds, out int region, out Layout layout)
    {
        for (int i = 0; i < Entries; i++)
        {
            if (lastUse[i] != 0 && lengths[i] == rowIds.Length && rowIds.SequenceEqual(ids[i].AsSpan(0, lengths[i])))
            {
                lastUse[i] = ++clock;
                Hits++;
                (region, layout) = (i, layouts[i]);
                return true;
            }
        }

        (region, layout) = (-1, default);
        return false;
    }

    /// <summary>Records that <paramref name="rowIds"/>' grouping is being uploaded; returns the region to upload it to.</summary>
    public int Store(ReadOnlySpan<int> rowIds, EmbeddingRowGrouping grouping)
    {
        int region = 0;
        for (int i = 1; i < Entries; i++)
            if (lastUse[i] < lastUse[region]) region = i;
        if (ids[region].Length < rowIds.Length) ids[region] = new int[rowIds.Length];
        rowIds.CopyTo(ids[region]);
        lengths[region] = rowIds.Length;
        layouts[region] = new Layout(grouping.Segments, grouping.StartsOffset, grouping.IdsOffset);
        lastUse[region] = ++clock;
        Misses++;
        return region;
    }

    /// <summary>Where a grouping's parts lie in its region (in ints), and how many segments it has.</summary>
    public readonly record struct Layout(int Segments, int StartsOffset, int IdsOffset);
}
