using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>
/// Fused causal attention (kernels-cu/flash_attention_forward.cu, flash_attention_backward.cu): tensor-core tiles of
/// Q against K/V with an online softmax, so neither pass reads or writes the [batch, heads, seq, seq] probabilities.
/// With <see cref="AttentionSparsity"/> set, their _sparse entry points visit only the tiles the layout keeps pairs of
/// (CudaOps.SparseAttention.cs), and dQ is always recomputed.
/// The forward keeps one fp32 log-sum-exp per query row (<c>lse</c>, [batch, heads, seq]); the backward recomputes
/// the probabilities from it and also needs the forward's output <c>y</c> (for D = Σ dy·y per row, which it keeps in
/// <see cref="scoreScratch"/>, batch·heads·seq floats). Taken for 16-bit storage and head sizes that are multiples of
/// 16 up to 128; otherwise the Try methods return false and the caller keeps the GEMM + softmax path (fp32 too).
/// </summary>
public sealed partial class CudaOps
{
    private const int FlashRowsPerBlock = 64, FlashThreads = 128, FlashDotThreads = 256, FlashMaxHeadDim = 128;

    /// <summary>Threads per row of flash_attention_backward_dot: SW_FLASH_DOT_LANES.</summary>
    private const int FlashDotLanes = 8;

    /// <summary>Rows (queries or keys) of a 64-row key or query tile in shared memory: SW_FLASH_TILE.</summary>
    private const int FlashTile = 64;

    /// <summary>
    /// Whether the flash kernels take this attention: fp16/bf16 storage, headDim a multiple of 16 up to 128 and
    /// batch·heads within a grid's y limit. Forward and backward need not decide alike: both paths save and read the
    /// same log-sum-exp.
    /// </summary>
    internal bool FlashAttentionSupported(int batch, int sequence, int heads, int dim)
    {
        if (!fusedAttention || Storage == StorageType.Float32 || heads <= 0 || dim % heads != 0) return false;
        int headDim = dim / heads;
        return headDim % 16 == 0 && headDim is > 0 and <= FlashMaxHeadDim && (long)batch * heads <= 65535;
    }

    /// <summary>
    /// y = causal softmax(Q·Kᵀ/√headDim)·V and lse[b, h, t] = ln Σ_u exp(q_t·k_u/√headDim) (fp32), in one kernel.
    /// Addresses are device addresses already checked by the caller; y and lse must be 4-byte aligned (y is written in
    /// element pairs). Returns false, launching nothing, when the flash kernels do not take this shape.
    /// Launch: grid (ceil(seq/rows), batch·heads) with 128 rows per block for head sizes up to 64 and 64 above, block
    /// 128, dynamic shared memory for two stages of K and V tiles.
    /// </summary>
    private bool TryFlashAttention(ulong qkv, ulong y, ulong lse, int batch, int sequence, int heads, int dim)
    {
        if (!FlashAttentionSupported(batch, sequence, heads, dim) || y % 4 != 0 || lse % 4 != 0) return false;
        if (batch == 0) return true;
        int headDim = dim / heads, width = FlashWidth(headDim);
        // d64: 128 queries per block (two 16-row tiles per warp); d128: 64. Two stages of (K, V) tiles.
        int rows = width == 64 ? 2 * FlashRowsPerBlock : FlashRowsPerBlock;
        uint shared = FlashTileStagesBytes(width);
        var grid = new CudaDim3((uint)Blocks(sequence, rows), (uint)(batch * heads));
        var (cells, tiles, block) = DeviceSparseLayout(heads, sequence);
        if (cells == 0)
            SharedMemoryKernel($"flash_attention_forward_d{width}", shared).Launch(grid, FlashThreads, shared, null,
                qkv, y, lse, sequence, heads, headDim);
        else
            SharedMemoryKernel($"flash_attention_forward_sparse_d{width}", shared).Launch(grid, FlashThreads, shared, null,
                qkv, y, lse, sequence, heads, headDim, tiles, cells, block);
        return true;
    }

    /// <summary>
    /// dqkv (=|+=) the gradient of <see cref="TryFlashAttention"/>'s y with respect to qkv, given the forward's y and
    /// lse and the output gradient dy: D = Σ dy·y per row (into <see cref="scoreScratch"/>), then dK/dV (one block per
    /// key tile) and dQ (one block per query tile), deterministic (no atomics). dy and dqkv need no particular
    /// alignment. Returns false, launching nothing, exactly when <see cref="TryFlashAttention"/> would.
    /// </summary>
    private bool TryFlashAttentionBackward(ulong qkv, ulong y, ulong dy, ulong lse, ulong dqkv, int batch, int sequence,
        int heads, int dim, bool accumulate)
    {
        if (!FlashAttentionSupported(batch, sequence, heads, dim) || y % 4 != 0 || lse % 4 != 0) return false;
        if (batch == 0) return true;
        int headDim = dim / heads, rows = batch * sequence * heads;
        // D (fp32, one per row), then, 256-byte aligned, the dSᵀ tiles where dQ is computed from them (if they fit
        // the option's bound: they grow with seq², the flash path's other memory with seq).
        long deltaBytes = ((long)rows * sizeof(float) + 255) / 256 * 256;
        long scoresBytes = ((long)batch * heads * sequence * sequence + 8) * ElementBytes;
        var (cells, tiles, block) = DeviceSparseLayout(heads, sequence);
        bool sparse = cells != 0;
        // Block-sparse: dQ is recomputed (the stored dSᵀ tiles would cost seq² whatever the layout keeps).
        if (!flashDqFromStoredScores || scoresBytes > Options.FlashStoredScoresMaxBytes || sparse) scoresBytes = 0;
        ulong delta = scoreScratch.Ensure(deltaBytes + scoresBytes);
        ulong scores = scoresBytes > 0 ? delta + (ulong)deltaBytes : 0;
        // D: 8 threads per row (SW_FLASH_DOT_LANES), each with 16-byte loads of y and dy where both are 16-byte
        // aligned: a warp reads 4 rows of 128 bytes per load, where one warp per row moved 64 bytes per load.
        Kernel("flash_attention_backward_dot").Launch(Blocks(rows, FlashDotThreads / FlashDotLanes), FlashDotThreads, 0, null,
            y, dy, delta, rows, sequence, heads, headDim);
        int width = FlashWidth(headDim);
        var grid = new CudaDim3((uint)Blocks(sequence, FlashRowsPerBlock), (uint)(batch * heads));
        int add = accumulate ? 1 : 0;
        // Two stages each: (Q, dY) tiles and their fp32 lse and D for dK/dV (and, storing dSᵀ, each warp's 16 × 72
        // staging rows); (K, V) tiles for dQ, or (dSᵀ, K) tiles for dQ from the stored scores.
        uint dkdvShared = (uint)((2 * (2 * FlashTile * (width + 8) + 4 * FlashTile) +
            (scores != 0 ? FlashThreads / 32 * 16 * (FlashTile + 8) : 0)) * sizeof(ushort));
        if (sparse)
        {
            SharedMemoryKernel($"flash_attention_backward_dkdv_sparse_d{width}", dkdvShared).Launch(grid, FlashThreads,
                dkdvShared, null, qkv, dy, lse, delta, dqkv, sequence, heads, headDim, add, tiles, cells, block);
            uint sparseDqShared = FlashTileStagesBytes(width);
            SharedMemoryKernel($"flash_attention_backward_dq_sparse_d{width}", sparseDqShared).Launch(grid, FlashThreads,
                sparseDqShared, null, qkv, dy, lse, delta, dqkv, sequence, heads, headDim, add, tiles, cells, block);
            return true;
        }

        SharedMemoryKernel($"flash_attention_backward_dkdv_d{width}", dkdvShared).Launch(grid, FlashThreads, dkdvShared, null,
            qkv, dy, lse, delta, dqkv, scores, sequence, heads, headDim, add);
        if (scores == 0)
        {
            uint dqShared = FlashTileStagesBytes(width);
            SharedMemoryKernel($"flash_attention_backward_dq_d{width}", dqShared).Launch(grid, FlashThreads, dqShared, null,
                qkv, dy, lse, delta, dqkv, sequence, heads, headDim, add);
        }
        else
        {
            uint storedShared = (uint)(2 * (FlashTile * (FlashTile + 8) + FlashTile * (width + 8)) * sizeof(ushort));
            SharedMemoryKernel($"flash_attention_backward_dq_stored_d{width}", storedShared).Launch(grid, FlashThreads,
                storedShared, null, qkv, scores, dqkv, sequence, heads, headDim, add);
        }
        return true;
    }

    /// <summary>Whether <see cref="Attention"/> and <see cref="AttentionBackward"/> take the fused kernels for this shape.</summary>
    /// <remarks>For a y that starts 4-byte aligned, as the planned arenas' buffers do; one that does not keeps the GEMM path.</remarks>
    public bool UsesFlashAttention(int batch, int sequence, int heads, int dim) => FlashAttentionSupported(batch, sequence, heads, dim);

    /// <summary>
    /// Dynamic shared memory of the forward and dQ kernels: two stages of two 64-row 16-bit tiles (K and V), rows padded
    /// to width + 8 elements.
    /// </summary>
    private static uint FlashTileStagesBytes(int width) => (uint)(4 * FlashTile * (width + 8) * sizeof(ushort));

    /// <summary>The compiled head width that takes <paramref name="headDim"/>: 64 up to 64, else 128.</summary>
    private static int FlashWidth(int headDim) => headDim <= 64 ? 64 : 128;

}
