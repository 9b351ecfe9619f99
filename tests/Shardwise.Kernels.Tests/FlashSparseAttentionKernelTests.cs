using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Precision;
using Shardwise.Sparsity;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The block-sparse flash kernels (flash_attention_{forward,backward_dkdv,backward_dq}_sparse_*) on the SIMT emulation
/// against CpuOps.Attention / AttentionBackward with the same pattern, and the tile table they read
/// (<see cref="FlashSparseTiles"/>) against a per-token count. Layouts with blocks smaller than, equal to and larger
/// than the kernels' 64-row tiles, so tiles are skipped, fully kept and partly kept; a sequence that ends mid-tile;
/// random blocks that leave some rows of a visited tile with no key in it (the online softmax's −∞ guard).
/// </summary>
[TestClass]
public sealed class FlashSparseAttentionKernelTests
{
    private const int Threads = 128, Rows = 64, DotThreads = 256, DotLanes = 8, Tile = 64;

    private static uint TileShared(int width) => (uint)(4 * Tile * (width + 8) * 2);

    private static uint DkdvShared(int width) => (uint)(2 * (2 * Tile * (width + 8) + 4 * Tile) * 2);

    /// <summary>(pattern, batch, heads, headDim, seq, kernel width).</summary>
    private static readonly (SparseAttentionPattern Pattern, int Batch, int Heads, int HeadDim, int Seq, int Width)[] Cases =
    [
        // Blocks of 16: every tile below the diagonal partly kept (the global column of each window).
        (new SparseAttentionPattern { Block = 16 }, 1, 2, 64, 208, 64),
        // Blocks of 64: the diagonal and column 0 fully kept, the rest skipped.
        (new SparseAttentionPattern { Mode = SparseAttentionMode.BSLongformer, Block = 64, NumSlidingWindowBlocks = 1 }, 1, 2, 32, 256, 64),
        // Random blocks per head and row: rows of a visited tile that keep nothing in it.
        (new SparseAttentionPattern { Mode = SparseAttentionMode.BigBird, Block = 16, NumRandomBlocks = 1, NumSlidingWindowBlocks = 1,
            NumGlobalBlocks = 0, DifferentLayoutPerHead = true, Seed = 2 }, 2, 3, 32, 192, 64),
        // Blocks of 128 (a tile is all in or all out), the d128 kernels.
        (new SparseAttentionPattern { Mode = SparseAttentionMode.Variable, Block = 128, LocalWindowBlocks = [1], GlobalBlockIndices = [0] }, 1, 1, 80, 384, 128),
        // Blocks of 8 over a sequence that ends mid-tile, unidirectional, d128 with a narrow head.
        (new SparseAttentionPattern { Mode = SparseAttentionMode.Variable, Block = 8, LocalWindowBlocks = [3], GlobalBlockIndices = [2, 9],
            Attention = SparseAttentionDirection.Unidirectional, NumRandomBlocks = 1, Seed = 4 }, 1, 2, 32, 136, 128),
    ];

    public static System.Collections.Generic.IEnumerable<object[]> StoragesAndCases()
    {
        foreach (StorageType storage in new[] { StorageType.Float16, StorageType.BFloat16 })
            for (int i = 0; i < Cases.Length; i++) yield return [storage, i];
    }

    [TestMethod]
    [DynamicData(nameof(StoragesAndCases))]
    public void SparseKernelsMatchCpuSparseAttention(StorageType storage, int index)
    {
        var (pattern, batch, heads, headDim, seq, width) = Cases[index];
        int dim = heads * headDim, rows = batch * seq * heads;
        string at = $"{storage}, case {index} ({pattern.Describe()}), batch {batch}, heads {heads}, headDim {headDim}, seq {seq}, d{width}";
        BlockSparseLayout layout = pattern.LayoutFor(heads, seq);
        byte[] tiles = FlashSparseTiles.Build(layout, Tile);
        var data = new TestData(70 + index);
        float[] qkv = storage.Rounded(data.NonZero(3L * batch * seq * dim));
        float[] dy = storage.Rounded(data.NonZero((long)batch * seq * dim));
        float[] prior = storage.Rounded(data.NonZero(qkv.Length));
        SchedulerOrder order = index % 2 == 0 ? SchedulerOrder.Forward : SchedulerOrder.Reversed;
        string suffix = storage.Suffix();

        var cpu = new CpuReference();
        cpu.Ops.AttentionSparsity = pattern;
        Slice qkvSlice = cpu.Put(qkv), ySlice = cpu.Zeros((long)batch * seq * dim), lseSlice = cpu.Zeros((long)batch * heads * seq);
        Slice dySlice = cpu.Put(dy), dqkvSlice = cpu.Zeros(qkv.Length), accumulatedSlice = cpu.Put(prior);
        cpu.Ops.Attention(qkvSlice, ySlice, lseSlice, batch, seq, heads, dim);
        cpu.Ops.AttentionBackward(qkvSlice, ySlice, lseSlice, dySlice, dqkvSlice, batch, seq, heads, dim, false);
        cpu.Ops.AttentionBackward(qkvSlice, ySlice, lseSlice, dySlice, accumulatedSlice, batch, seq, heads, dim, true);

        using var qkvBuffer = DeviceBuffer.From(qkv, storage);
        using var cells = DeviceBuffer.FromBytes(layout.Cells);
        using var tileTable = DeviceBuffer.FromBytes(tiles);
        using var y = DeviceBuffer.Zeroed((long)batch * seq * dim, storage);
        using var lse = DeviceBuffer.Zeroed((long)batch * heads * seq, StorageType.Float32);
        var forwardGrid = new Dim3((uint)SimtEmulator.Blocks(seq, width == 64 ? 2 * Rows : Rows), (uint)(batch * heads));
        SimtEmulator.Launch($"flash_attention_forward_sparse_d{width}_{suffix}", forwardGrid, Threads, TileShared(width), order,
            qkvBuffer, y, lse, seq, heads, headDim, tileTable, cells, layout.Block);
        Compare.Close(cpu.Read(lseSlice), lse.ToFloats(), 1e-5f, $"lse, {at}");
        Compare.Close(cpu.Read(ySlice), y.ToFloats(), storage.Tolerance(), $"y, {at}");

        using var dyBuffer = DeviceBuffer.From(dy, storage);
        using var delta = DeviceBuffer.Zeroed((long)batch * heads * seq, StorageType.Float32);
        SimtEmulator.Launch($"flash_attention_backward_dot_{suffix}", SimtEmulator.Blocks(rows, DotThreads / DotLanes), DotThreads,
            order, y, dyBuffer, delta, rows, seq, heads, headDim);
        var grid = new Dim3((uint)SimtEmulator.Blocks(seq, Rows), (uint)(batch * heads));
        foreach (bool accumulate in new[] { false, true })
        {
            using var dqkv = DeviceBuffer.From(prior, storage);
            int add = accumulate ? 1 : 0;
            SimtEmulator.Launch($"flash_attention_backward_dkdv_sparse_d{width}_{suffix}", grid, Threads, DkdvShared(width), order,
                qkvBuffer, dyBuffer, lse, delta, dqkv, seq, heads, headDim, add, tileTable, cells, layout.Block);
            SimtEmulator.Launch($"flash_attention_backward_dq_sparse_d{width}_{suffix}", grid, Threads, TileShared(width), order,
                qkvBuffer, dyBuffer, lse, delta, dqkv, seq, heads, headDim, add, tileTable, cells, layout.Block);
            Compare.Close(cpu.Read(accumulate ? accumulatedSlice : dqkvSlice), dqkv.ToFloats(), 2 * storage.Tolerance(),
                $"dqkv ({(accumulate ? "accumulated" : "overwritten")}), {at}");
        }
    }

    [TestMethod]
    public void TheCasesCoverEveryTileKind()
    {
        var kinds = Cases.SelectMany(c => FlashSparseTiles.Build(c.Pattern.LayoutFor(c.Heads, c.Seq), Tile)).ToHashSet();
        CollectionAssert.IsSubsetOf(new[] { FlashSparseTiles.Skip, FlashSparseTiles.Full, FlashSparseTiles.Partial }, kinds.ToArray());
        // Case 1 (blocks of 64, window 1, global block 0): tile (i, j) is kept exactly on the diagonal and in column 0.
        var (pattern, _, heads, _, seq, _) = Cases[1];
        byte[] table = FlashSparseTiles.Build(pattern.LayoutFor(heads, seq), Tile);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j <= i; j++)
                Assert.AreEqual(i == j || j == 0 ? FlashSparseTiles.Full : FlashSparseTiles.Skip, table[i * 4 + j], $"tile ({i}, {j})");
    }

    [TestMethod]
    public void VisitedShareCountsTheCausalTilesNotSkipped()
    {
        var (pattern, _, heads, _, seq, _) = Cases[1];
        Assert.AreEqual(7.0 / 10, FlashSparseTiles.VisitedShare(pattern.LayoutFor(heads, seq), Tile), 1e-12, "4 diagonal tiles and 3 of column 0, of 10");
        // Blocks of 16 with a global block in every window: every tile is visited, whatever share of cells is kept.
        var small = Cases[0].Pattern.LayoutFor(1, 1024);
        Assert.AreEqual(1.0, FlashSparseTiles.VisitedShare(small, Tile));
        Assert.IsTrue(small.CausalDensity < 0.35, small.ToString());
        // The GPU bench's sparse config (bench/configs/gpt2-bf16-sparse.json): 64 of GPT-2's 136 causal tiles.
        string config = System.IO.Path.Combine(SimtEmulator.RepositoryRoot, "bench", "configs", "gpt2-bf16-sparse.json");
        var bench = Shardwise.Training.Config.DeepSpeedConfig.Load(config).Config.SparseAttention!;
        Assert.AreEqual(64.0 / 136, FlashSparseTiles.VisitedShare(bench.LayoutFor(12, 1024), Tile), 1e-12);
    }

    /// <summary>
    /// The 16-wide groups a warp runs the products of in a partly kept tile (sw_flash_sparsity::groups, through
    /// tests/kernels-harness/probe_flash_sparsity.cu) against a per-token count: a group is needed exactly when one of
    /// the warp's rows keeps one of its pairs. For queries as rows (forward, dQ: 16 and 32-row warps) and keys as rows
    /// (dK/dV); and blocks of 16 must leave groups to skip, or the skipping would save nothing.
    /// </summary>
    [TestMethod]
    public void WarpGroupsAreExactlyTheGroupsWithAKeptPair()
    {
        int skipped = 0;
        foreach (int index in new[] { 0, 2, 4 })
        {
            var (pattern, _, heads, _, seq, _) = Cases[index];
            BlockSparseLayout layout = pattern.LayoutFor(heads, seq);
            var requests = new System.Collections.Generic.List<int>();
            var expected = new System.Collections.Generic.List<uint>();
            var heads0 = new System.Collections.Generic.List<int>();
            for (int h = 0; h < heads; h++)
            for (int rows = 16; rows <= 32; rows += 16)
            for (int first = 0; first < seq; first += rows)
            for (int k0 = 0; k0 < seq; k0 += Tile)
            foreach (bool keysAreRows in new[] { false, true })
            {
                uint bits = 0;
                for (int g = 0; g < 4; g++)
                {
                    bool kept = false;
                    for (int row = first; row < Math.Min(first + rows, seq) && !kept; row++)
                        for (int other = k0 + 16 * g; other < Math.Min(k0 + 16 * g + 16, seq) && !kept; other++)
                            kept = keysAreRows ? layout.KeepsToken(h, other, row) : layout.KeepsToken(h, row, other);
                    if (kept) bits |= 1u << g;
                }

                if (rows == 16 || !keysAreRows) // dK/dV warps hold 16 keys
                {
                    requests.AddRange([first, first + rows - 1, k0, keysAreRows ? 1 : 0]);
                    expected.Add(bits);
                    heads0.Add(h);
                }
            }

            for (int h = 0; h < heads; h++)
            {
                int[] mine = Enumerable.Range(0, expected.Count).Where(i => heads0[i] == h).ToArray();
                using var cells = DeviceBuffer.FromBytes(layout.Cells);
                using var input = DeviceBuffer.FromInts(mine.SelectMany(i => requests.Skip(4 * i).Take(4)).ToArray());
                using var output = DeviceBuffer.ZeroedInts(mine.Length);
                SimtEmulator.Launch("probe_flash_sparsity_groups", SimtEmulator.Blocks(mine.Length, 64), 64, SchedulerOrder.Forward,
                    cells, layout.Block, seq, h, input, mine.Length, output);
                int[] actual = output.ToInts();
                for (int j = 0; j < mine.Length; j++)
                {
                    int i = mine[j];
                    Assert.AreEqual(expected[i], (uint)actual[j],
                        $"{pattern.Describe()}, head {h}: rows {requests[4 * i]}…{requests[4 * i + 1]}, tile {requests[4 * i + 2]}, keys as rows {requests[4 * i + 3]}");
                    if (index == 0 && expected[i] != 0 && expected[i] != 0xF) skipped++;
                }
            }
        }

        Assert.IsTrue(skipped > 0, "blocks of 16 leave warps groups to skip in tiles they visit");
    }

    [TestMethod]
    public void TileKindsMatchAPerTokenCount()
    {
        foreach (var (pattern, _, heads, _, seq, _) in Cases)
        {
            BlockSparseLayout layout = pattern.LayoutFor(heads, seq);
            byte[] table = FlashSparseTiles.Build(layout, Tile);
            int tiles = (seq + Tile - 1) / Tile;
            for (int h = 0; h < heads; h++)
            for (int qt = 0; qt < tiles; qt++)
            for (int kt = 0; kt < tiles; kt++)
            {
                int kept = 0, causal = 0;
                for (int q = qt * Tile; q < Math.Min(seq, (qt + 1) * Tile); q++)
                    for (int k = kt * Tile; k < Math.Min(seq, (kt + 1) * Tile) && k <= q; k++)
                    {
                        causal++;
                        if (layout.KeepsToken(h, q, k)) kept++;
                    }

                byte expected = kept == 0 ? FlashSparseTiles.Skip : kept == causal ? FlashSparseTiles.Full : FlashSparseTiles.Partial;
                Assert.AreEqual(expected, table[(h * tiles + qt) * tiles + kt], $"{pattern.Describe()}: head {h}, tile ({qt}, {kt})");
            }
        }
    }
}
