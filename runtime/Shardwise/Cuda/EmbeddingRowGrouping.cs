using System;

namespace Shardwise.Cuda;

/// <summary>
/// The host-side grouping that embedding_backward and embedding_range_backward take (kernels-cu/embedding.cu): the
/// rows sorted by token id, stably (rows with the same id keep their order, so each table row adds its gradients in
/// the CPU backend's order), cut into one segment per distinct id. Built from the host copy of the index arena into
/// buffers sized once for the arena, then uploaded as one block <c>[order | starts | ids]</c>.
/// </summary>
internal sealed class EmbeddingRowGrouping
{
    private long[] keys = [];

    /// <summary><c>order[rows] | segment_starts[segments + 1] | segment_ids[segments]</c>, packed from index 0.</summary>
    public int[] Packed { get; private set; } = [];

    public int Segments { get; private set; }

    /// <summary>Where segment_starts begins in <see cref="Packed"/>.</summary>
    public int StartsOffset { get; private set; }

    /// <summary>Where segment_ids begins in <see cref="Packed"/>.</summary>
    public int IdsOffset { get; private set; }

    /// <summary>Ints of <see cref="Packed"/> in use.</summary>
    public int Length => IdsOffset + Segments;

    /// <summary>Makes room for <paramref name="rows"/> rows (at most 3·rows + 1 ints).</summary>
    public void Reserve(int rows)
    {
        if (keys.Length < rows) keys = new long[rows];
        if (Packed.Length < 3 * rows + 1) Packed = new int[3 * rows + 1];
    }

    public void Build(ReadOnlySpan<int> ids)
    {
        int rows = ids.Length;
        Reserve(rows);
        // Sorting (id, row) pairs keeps rows with equal ids in row order.
        Span<long> sorted = keys.AsSpan(0, rows);
        for (int r = 0; r < rows; r++) sorted[r] = ((long)ids[r] << 32) | (uint)r;
        sorted.Sort();

        int segments = 0;
        for (int k = 0; k < rows; k++)
        {
            if (k == 0 || sorted[k] >> 32 != sorted[k - 1] >> 32) segments++;
        }

        int[] packed = Packed;
        StartsOffset = rows;
        IdsOffset = rows + segments + 1;
        int s = 0;
        for (int k = 0; k < rows; k++)
        {
            packed[k] = (int)(sorted[k] & 0xffffffff);
            if (k == 0 || sorted[k] >> 32 != sorted[k - 1] >> 32)
            {
                packed[StartsOffset + s] = k;
                packed[IdsOffset + s] = (int)(sorted[k] >> 32);
                s++;
            }
        }

        packed[StartsOffset + segments] = rows;
        Segments = segments;
    }
}
