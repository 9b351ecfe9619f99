using System;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>
/// The host-side grouping embedding_backward takes (see kernels-cu/embedding.cu): the rows sorted by token id, stably,
/// cut into one segment per distinct id. Built where the ids are before upload; O(rows log rows).
/// </summary>
public sealed record EmbeddingBackwardPlan(int[] Order, int[] SegmentStarts, int[] SegmentIds)
{
    public int Segments => SegmentIds.Length;

    public static EmbeddingBackwardPlan Build(ReadOnlySpan<int> ids)
    {
        // Sorting (id, row) pairs keeps rows with equal ids in row order, so the kernel adds them in the CPU's order.
        var keys = new long[ids.Length];
        for (int r = 0; r < ids.Length; r++) keys[r] = ((long)ids[r] << 32) | (uint)r;
        Array.Sort(keys);

        var order = new int[ids.Length];
        int segments = 0;
        for (int k = 0; k < keys.Length; k++)
        {
            order[k] = (int)(keys[k] & 0xffffffff);
            if (k == 0 || keys[k] >> 32 != keys[k - 1] >> 32) segments++;
        }

        var starts = new int[segments + 1];
        var segmentIds = new int[segments];
        int s = 0;
        for (int k = 0; k < keys.Length; k++)
        {
            if (k == 0 || keys[k] >> 32 != keys[k - 1] >> 32)
            {
                starts[s] = k;
                segmentIds[s++] = (int)(keys[k] >> 32);
            }
        }

        starts[segments] = ids.Length;
        return new EmbeddingBackwardPlan(order, starts, segmentIds);
    }
}
