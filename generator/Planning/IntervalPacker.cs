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
    public long Place(long size, int start, int end)
    {
        long offset = 0;
        foreach (var other in _placed.Where(p => p.Start <= end && start <= p.End).OrderBy(p => p.Offset))
        {
            if (offset + size <= other.Offset) break;
            offset = Math.Max(offset, other.Offset + other.Size);
        }
        _placed.Add((offset, size, start, end));
        Extent = Math.Max(Extent, offset + size);
        return offset;
    }
}
