using System;
using Shardwise.Sparsity;

namespace Shardwise.Cuda;

/// <summary>
/// The tile table of the block-sparse flash kernels (kernels-cu/flash_attention_common.cuh, sw_flash_sparsity): per
/// (head, 64-query tile, 64-key tile), <see cref="Skip"/> when the layout keeps none of the tile's causal (query ≤ key
/// order: key ≤ query) pairs, <see cref="Full"/> when it keeps all of them, <see cref="Partial"/> otherwise. Tiles
/// wholly above the diagonal are <see cref="Skip"/> (no causal pair). Worked out per layout cell, not per token.
/// </summary>
public static class FlashSparseTiles
{
    public const byte Skip = 0, Full = 1, Partial = 2;

    /// <summary>
    /// The share of the causal tiles (on and below the diagonal) the flash kernels visit (not <see cref="Skip"/>), over
    /// all heads: their attention work relative to dense. Layouts whose blocks are smaller than a tile drop work only
    /// where whole tiles are dropped.
    /// </summary>
    public static double VisitedShare(BlockSparseLayout layout, int tile)
    {
        byte[] kinds = Build(layout, tile);
        int tiles = (layout.Sequence + tile - 1) / tile;
        long visited = 0;
        for (int h = 0; h < layout.Heads; h++)
            for (int qt = 0; qt < tiles; qt++)
                for (int kt = 0; kt <= qt; kt++)
                    if (kinds[((long)h * tiles + qt) * tiles + kt] != Skip) visited++;
        return (double)visited / ((long)layout.Heads * tiles * (tiles + 1) / 2);
    }

    /// <summary>[heads, tiles, tiles] kinds, tiles = ceil(seq / <paramref name="tile"/>).</summary>
    public static byte[] Build(BlockSparseLayout layout, int tile)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tile);
        int seq = layout.Sequence, block = layout.Block, tiles = (seq + tile - 1) / tile;
        var kinds = new byte[(long)layout.Heads * tiles * tiles];
        for (int h = 0; h < layout.Heads; h++)
        for (int qt = 0; qt < tiles; qt++)
        for (int kt = 0; kt <= qt; kt++)
        {
            int queryStart = qt * tile, queryEnd = Math.Min(queryStart + tile, seq);
            int keyStart = kt * tile, keyEnd = Math.Min(keyStart + tile, seq);
            bool kept = false, dropped = false;
            for (int bq = queryStart / block; bq * block < queryEnd; bq++)
            {
                // The rectangle of this cell inside the tile has a causal pair when its first key is at or before its last query.
                int lastQuery = Math.Min((bq + 1) * block, queryEnd) - 1;
                for (int bk = keyStart / block; bk * block < keyEnd; bk++)
                {
                    int firstKey = Math.Max(bk * block, keyStart);
                    if (firstKey > lastQuery) break;
                    if (layout.Keeps(h, bq, bk)) kept = true;
                    else dropped = true;
                }
            }

            kinds[((long)h * tiles + qt) * tiles + kt] = !kept ? Skip : dropped ? Partial : Full;
        }

        return kinds;
    }
}
