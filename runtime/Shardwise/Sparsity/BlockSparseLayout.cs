using System;
using System.Globalization;
using System.Text;

namespace Shardwise.Sparsity;

/// <summary>
/// Which block × block tiles of each head's [seq, seq] scores attention keeps: cell (h, i, j) set means queries of
/// block i may attend to keys of block j of head h (DeepSpeed's layout tensor [heads, blocks, blocks]). The attention
/// is causal on top of it: <see cref="KeepsToken"/> also needs key ≤ query. Built by <see cref="SparseAttentionPattern.LayoutFor"/>;
/// every query row keeps at least one key at or before it (the builder refuses layouts that do not).
/// </summary>
public sealed class BlockSparseLayout
{
    private readonly byte[] cells;

    internal BlockSparseLayout(int heads, int sequence, int block, byte[] cells)
    {
        Heads = heads;
        Sequence = sequence;
        Block = block;
        Blocks = sequence / block;
        this.cells = cells;
    }

    public int Heads { get; }

    public int Sequence { get; }

    public int Block { get; }

    /// <summary>Blocks per row and per column: sequence / block.</summary>
    public int Blocks { get; }

    /// <summary>The cells, [heads, blocks, blocks] row-major, 1 kept and 0 dropped (what the CUDA kernels read).</summary>
    public ReadOnlySpan<byte> Cells => cells;

    public bool Keeps(int head, int queryBlock, int keyBlock) => cells[((long)head * Blocks + queryBlock) * Blocks + keyBlock] != 0;

    /// <summary>Whether query <paramref name="query"/> attends to key <paramref name="key"/> in head <paramref name="head"/>: causal and kept.</summary>
    public bool KeepsToken(int head, int query, int key) => key <= query && Keeps(head, query / Block, key / Block);

    /// <summary>Kept tiles on or below the diagonal over all tiles there, averaged over heads: the share of causal attention's work left.</summary>
    public double CausalDensity => causalDensity ??= CountCausalDensity();

    private double? causalDensity;

    private double CountCausalDensity()
    {
        long kept = 0;
        for (int h = 0; h < Heads; h++)
            for (int i = 0; i < Blocks; i++)
                for (int j = 0; j <= i; j++)
                    if (Keeps(h, i, j)) kept++;
        return (double)kept / ((long)Heads * Blocks * (Blocks + 1) / 2);
    }

    /// <summary>The layout of heads <paramref name="first"/> … first + count − 1 alone (a tensor-parallel rank's heads).</summary>
    public BlockSparseLayout HeadRange(int first, int count)
    {
        long perHead = (long)Blocks * Blocks;
        return new BlockSparseLayout(count, Sequence, Block, cells.AsSpan((int)(first * perHead), (int)(count * perHead)).ToArray());
    }

    /// <summary>Head <paramref name="head"/>'s layout, one line per block row: '#' kept, '.' dropped.</summary>
    public string Render(int head)
    {
        var text = new StringBuilder();
        for (int i = 0; i < Blocks; i++)
        {
            for (int j = 0; j < Blocks; j++) text.Append(Keeps(head, i, j) ? '#' : '.');
            text.Append('\n');
        }

        return text.ToString();
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Heads} heads × {Blocks}×{Blocks} blocks of {Block}, {100 * CausalDensity:F0}% of the causal tiles kept");
}
