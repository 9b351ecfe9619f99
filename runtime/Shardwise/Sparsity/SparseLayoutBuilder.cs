using System;

namespace Shardwise.Sparsity;

/// <summary>
/// Builds the layouts of DeepSpeed's SparsityConfig classes (deepspeed/ops/sparse_attention/sparsity_config.py), one
/// method per part of a pattern, in DeepSpeed's order: random blocks, then the local or sliding window, then the
/// global blocks; heads share head 0's layout unless different_layout_per_head.
/// </summary>
internal static class SparseLayoutBuilder
{
    public static BlockSparseLayout Build(SparseAttentionPattern pattern, int heads, int sequence)
    {
        foreach (var (key, message) in pattern.Problems())
            throw new ArgumentException($"sparse_attention.{key}: {message}");
        if (sequence % pattern.Block != 0)
            throw new ArgumentException($"sparse_attention.block {pattern.Block} does not divide the sequence length {sequence}: use a block that does (DeepSpeed pads the sequence instead; Shardwise's sequence is fixed at build time)");

        int blocks = sequence / pattern.Block;
        var layout = new Grid(heads, blocks);
        var random = new Random(pattern.Seed);
        int layoutHeads = pattern.DifferentLayoutPerHead ? heads : 1;
        for (int h = 0; h < layoutHeads; h++)
        {
            switch (pattern.Mode)
            {
                case SparseAttentionMode.Dense:
                    layout.Fill(h, 0, blocks, 0, blocks);
                    break;
                case SparseAttentionMode.Fixed:
                    FixedLocal(pattern, layout, h);
                    FixedGlobal(pattern, layout, h);
                    break;
                case SparseAttentionMode.Variable:
                    RandomBlocks(pattern, layout, h, random, causalOnly: false);
                    VariableLocal(pattern, layout, h);
                    IndexedGlobal(pattern, layout, h, columnsFromRow0: pattern.Attention == SparseAttentionDirection.Bidirectional, rows: pattern.HorizontalGlobalAttention);
                    break;
                case SparseAttentionMode.BigBird:
                    RandomBlocks(pattern, layout, h, random, causalOnly: pattern.Attention == SparseAttentionDirection.Unidirectional);
                    SlidingWindow(pattern, layout, h);
                    if (blocks < pattern.NumGlobalBlocks)
                        throw new ArgumentException($"sparse_attention.num_global_blocks {pattern.NumGlobalBlocks} is more than the {blocks} blocks of a {sequence}-token row");
                    layout.Fill(h, 0, pattern.NumGlobalBlocks, 0, blocks);
                    layout.Fill(h, 0, blocks, 0, pattern.NumGlobalBlocks);
                    break;
                case SparseAttentionMode.BSLongformer:
                    SlidingWindow(pattern, layout, h);
                    IndexedGlobal(pattern, layout, h, columnsFromRow0: true, rows: true);
                    break;
            }

            if (pattern.Attention == SparseAttentionDirection.Unidirectional && pattern.Mode is SparseAttentionMode.BigBird or SparseAttentionMode.BSLongformer)
                layout.KeepLowerTriangle(h);
        }

        for (int h = layoutHeads; h < heads; h++) layout.CopyHead(0, h);
        layout.RequireAKeyPerRow(pattern);
        return new BlockSparseLayout(heads, sequence, pattern.Block, layout.Cells);
    }

    // Windows of num_local_blocks along the diagonal; unidirectional keeps their lower triangles.
    private static void FixedLocal(SparseAttentionPattern pattern, Grid layout, int h)
    {
        for (int start = 0; start < layout.Blocks; start += pattern.NumLocalBlocks)
            LocalWindow(pattern, layout, h, start, Math.Min(start + pattern.NumLocalBlocks, layout.Blocks));
    }

    // The global representative of each whole window is its last num_global_blocks (head h % patterns shifts it one
    // group earlier per pattern); a short last window gets one too, clamped to the row's end.
    private static void FixedGlobal(SparseAttentionPattern pattern, Grid layout, int h)
    {
        int blocks = layout.Blocks, global = pattern.NumGlobalBlocks;
        int firstGlobal = pattern.NumLocalBlocks - (1 + h % pattern.NumDifferentGlobalPatterns) * global;
        int wholeWindowsEnd = blocks - blocks % pattern.NumLocalBlocks;
        for (int i = firstGlobal; i < wholeWindowsEnd; i += pattern.NumLocalBlocks)
            FixedGlobalColumns(pattern, layout, h, i, i + global);
        if (wholeWindowsEnd < blocks)
        {
            int start = Math.Min(wholeWindowsEnd + firstGlobal, blocks - global);
            FixedGlobalColumns(pattern, layout, h, start, start + global);
        }
    }

    private static void FixedGlobalColumns(SparseAttentionPattern pattern, Grid layout, int h, int start, int end)
    {
        int firstRow = pattern.Attention == SparseAttentionDirection.Bidirectional ? 0 : start;
        layout.Fill(h, firstRow, layout.Blocks, start, end);
        if (pattern.HorizontalGlobalAttention) layout.Fill(h, start, end, 0, layout.Blocks);
    }

    // Windows of the listed sizes; past the list, windows of its last size.
    private static void VariableLocal(SparseAttentionPattern pattern, Grid layout, int h)
    {
        int start = 0, size = pattern.LocalWindowBlocks[^1];
        foreach (int windowSize in pattern.LocalWindowBlocks)
        {
            if (start >= layout.Blocks) return;
            LocalWindow(pattern, layout, h, start, Math.Min(start + windowSize, layout.Blocks));
            start += windowSize;
        }

        for (; start < layout.Blocks; start += size)
            LocalWindow(pattern, layout, h, start, Math.Min(start + size, layout.Blocks));
    }

    private static void LocalWindow(SparseAttentionPattern pattern, Grid layout, int h, int start, int end)
    {
        for (int row = start; row < end; row++)
            layout.Fill(h, row, row + 1, start, pattern.Attention == SparseAttentionDirection.Unidirectional ? row + 1 : end);
    }

    // Global columns (and, with rows, global rows) at the listed indices or index windows; indices past the row are skipped.
    private static void IndexedGlobal(SparseAttentionPattern pattern, Grid layout, int h, bool columnsFromRow0, bool rows)
    {
        for (int i = 0; i < pattern.GlobalBlockIndices.Count; i++)
        {
            int start = pattern.GlobalBlockIndices[i];
            if (start >= layout.Blocks) continue;
            int end = pattern.GlobalBlockEndIndices is { } ends ? Math.Min(ends[i], layout.Blocks) : start + 1;
            if (rows) layout.Fill(h, start, end, 0, layout.Blocks);
            layout.Fill(h, columnsFromRow0 ? 0 : start, layout.Blocks, start, end);
        }
    }

    private static void SlidingWindow(SparseAttentionPattern pattern, Grid layout, int h)
    {
        if (layout.Blocks < pattern.NumSlidingWindowBlocks)
            throw new ArgumentException($"sparse_attention.num_sliding_window_blocks {pattern.NumSlidingWindowBlocks} is more than the {layout.Blocks} blocks of a row");
        int half = pattern.NumSlidingWindowBlocks / 2;
        for (int row = 0; row < layout.Blocks; row++)
            layout.Fill(h, row, row + 1, Math.Max(0, row - half), Math.Min(row + half + 1, layout.Blocks));
    }

    // num_random_blocks distinct key blocks per row, from all blocks or (causalOnly) from those at or before the row;
    // a row with fewer candidates than that takes them all (DeepSpeed's random.sample would raise).
    private static void RandomBlocks(SparseAttentionPattern pattern, Grid layout, int h, Random random, bool causalOnly)
    {
        int count = pattern.NumRandomBlocks;
        if (count == 0) return;
        if (layout.Blocks < count)
            throw new ArgumentException($"sparse_attention.num_random_blocks {count} is more than the {layout.Blocks} blocks of a row");
        var candidates = new int[layout.Blocks];
        for (int row = 0; row < layout.Blocks; row++)
        {
            int range = causalOnly ? row + 1 : layout.Blocks;
            for (int c = 0; c < range; c++) candidates[c] = c;
            int take = Math.Min(count, range);
            for (int k = 0; k < take; k++)
            {
                int pick = k + random.Next(range - k);
                (candidates[k], candidates[pick]) = (candidates[pick], candidates[k]);
                layout.Fill(h, row, row + 1, candidates[k], candidates[k] + 1);
            }
        }
    }

    /// <summary>The layout while it is built: [heads, blocks, blocks] bytes.</summary>
    private sealed class Grid(int heads, int blocks)
    {
        public int Blocks { get; } = blocks;

        public byte[] Cells { get; } = new byte[(long)heads * blocks * blocks];

        public void Fill(int h, int rowStart, int rowEnd, int columnStart, int columnEnd)
        {
            for (int i = rowStart; i < rowEnd; i++)
                Cells.AsSpan((int)(((long)h * Blocks + i) * Blocks + columnStart), Math.Max(0, columnEnd - columnStart)).Fill(1);
        }

        public void KeepLowerTriangle(int h)
        {
            for (int i = 0; i < Blocks; i++)
                Cells.AsSpan((int)(((long)h * Blocks + i) * Blocks + i + 1), Blocks - i - 1).Clear();
        }

        public void CopyHead(int from, int to) =>
            Cells.AsSpan(from * Blocks * Blocks, Blocks * Blocks).CopyTo(Cells.AsSpan(to * Blocks * Blocks, Blocks * Blocks));

        public void RequireAKeyPerRow(SparseAttentionPattern pattern)
        {
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < Blocks; i++)
                    if (Cells.AsSpan((int)(((long)h * Blocks + i) * Blocks), i + 1).IndexOf((byte)1) < 0)
                        throw new ArgumentException($"sparse attention ({pattern.Describe()}) leaves block row {i} of head {h} with no key block at or before it: its queries would attend to nothing");
        }
    }
}
