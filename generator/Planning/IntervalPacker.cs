using System;
using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Places buffers with lifetimes into one region: each goes to the lowest offset that is free for its whole lifetime
/// (buffers whose lifetimes do not overlap share memory). Callers decide the order — largest first is the usual
/// greedy — and pass sizes already aligned. Used for activations, streamed gradients and gathered parameters.
/// </summary>
internal sealed class IntervalPacker
{
    private readonly List<(long Offset, long Size, int Start, int End)> _placed = new();

    /// <summary>One past the highest element used so far: the region's size.</summary>
    public long Extent { get; private set; }

    /// <summary>Places a buffer of <paramref name="size"/> live from step <paramref name="start"/> to <paramref name="end"/> inclusive.</summary>
    public long Place(long size, int start, int end) => Place(size, new[] { (start, end) });

    /// <summary>
    /// Places a buffer live over several inclusive intervals (a recomputed activation: its layer's forward, then from
    /// the recompute on) at the lowest offset free in all of them; between them its memory serves other buffers.
    /// </summary>
    public long Place(long size, IEnumerable<(int Start, int End)> lifetimes)
    {
        var intervals = lifetimes.ToList();
        long offset = 0;
        foreach (var other in _placed.Where(p => intervals.Any(i => p.Start <= i.End && i.Start <= p.End)).OrderBy(p => p.Offset))
        {
            if (offset + size <= other.Offset) break;
            offset = Math.Max(offset, other.Offset + other.Size);
        }
        foreach (var (start, end) in intervals) _placed.Add((offset, size, start, end));
        Extent = Math.Max(Extent, offset + size);
        return offset;
    }
}
