using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>
/// Fused causal attention (kernels-cu/flash_attention_forward.cu, flash_attention_backward.cu): tensor-core tiles of
/// Q against K/V with an online softmax, so neither pass reads or writes the [batch, heads, seq, seq] probabilities.
/// The forward keeps one fp32 log-sum-exp per query row (<c>lse</c>, [batch, heads, seq]); the backward recomputes
/// the probabilities from it and also needs the forward's output <c>y</c> (for D = Σ dy·y per row, which it keeps in
/// <see cref="scoreScratch"/>, batch·heads·seq floats). Taken for 16-bit storage and head sizes that are multiples of
/// 16 up to 128; otherwise the Try methods return false and the caller keeps the GEMM + softmax path (fp32 too).
/// </summary>
public sealed partial class CudaOps
{
    private const int FlashRowsPerBlock = 64, FlashThreads = 128, FlashDotThreads = 256, FlashMaxHeadDim = 128;

    /// <summary>
    /// Whether the flash kernels take this attention: fp16/bf16 storage, headDim a multiple of 16 up to 128,
    /// batch·heads within a grid's y limit, and sequence ≥ 2 (so that the log-sum-exp, batch·heads·seq floats, fits the
    /// batch·heads·seq² 16-bit probabilities buffer the generator plans, where the forward keeps it). Forward and
    /// backward decide alike: the backward accepts whatever the forward accepted with the same shape, qkv, y and lse.
    /// </summary>
    internal bool FlashAttentionSupported(int batch, int sequence, int heads, int dim)
    {
        if (!fusedAttention || Storage == StorageType.Float32 || heads <= 0 || dim % heads != 0) return false;
        int headDim = dim / heads;
        return headDim % 16 == 0 && headDim is > 0 and <= FlashMaxHeadDim && sequence >= 2 &&
               (long)batch * heads <= 65535;
    }

    /// <summary>
    /// y = causal softmax(Q·Kᵀ/√headDim)·V and lse[b, h, t] = ln Σ_u exp(q_t·k_u/√headDim) (fp32), in one kernel.
    /// Addresses are device addresses already checked by the caller; y and lse must be 4-byte aligned (y is written in
    /// element pairs). Returns false, launching nothing, when the flash kernels do not take this shape.
    /// Launch: grid (ceil(seq/64), batch·heads), block 128, static shared memory only.
    /// </summary>
    private bool TryFlashAttention(ulong qkv, ulong y, ulong lse, int batch, int sequence, int heads, int dim)
    {
        if (!FlashAttentionSupported(batch, sequence, heads, dim) || y % 4 != 0 || lse % 4 != 0) return false;
        if (batch == 0) return true;
        int headDim = dim / heads;
        string kernel = headDim <= 64 ? "flash_attention_forward_d64" : "flash_attention_forward_d128";
        Kernel(kernel).Launch(FlashGrid(batch, sequence, heads), FlashThreads, 0, null,
            qkv, y, lse, sequence, heads, headDim);
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
        ulong delta = scoreScratch.Ensure((long)rows * sizeof(float));
        Kernel("flash_attention_backward_dot").Launch(Blocks(rows, FlashDotThreads / 32), FlashDotThreads, 0, null,
            y, dy, delta, rows, sequence, heads, headDim);
        bool narrow = headDim <= 64;
        CudaDim3 grid = FlashGrid(batch, sequence, heads);
        int add = accumulate ? 1 : 0;
        Kernel(narrow ? "flash_attention_backward_dkdv_d64" : "flash_attention_backward_dkdv_d128").Launch(grid,
            FlashThreads, 0, null, qkv, dy, lse, delta, dqkv, sequence, heads, headDim, add);
        Kernel(narrow ? "flash_attention_backward_dq_d64" : "flash_attention_backward_dq_d128").Launch(grid,
            FlashThreads, 0, null, qkv, dy, lse, delta, dqkv, sequence, heads, headDim, add);
        return true;
    }

    /// <summary>
    /// Where the flash path keeps its state inside the planned probabilities buffer of batch·heads·seq² elements
    /// (counted at the 16-bit element size, the least it spans): the fp32 log-sum-exp from byte 0, then, 256-byte
    /// aligned, a copy of the output y for backward's D = Σ dy·y. Null when the kernels do not take the shape or the
    /// buffer cannot hold both (seq &lt; headDim + 2 or so); forward and backward both ask this, so they always agree.
    /// </summary>
    private FlashState? FlashLayout(int batch, int sequence, int heads, int dim)
    {
        if (!FlashAttentionSupported(batch, sequence, heads, dim)) return null;
        long lseBytes = (long)batch * heads * sequence * sizeof(float);
        long keptOffset = (lseBytes + 255) / 256 * 256;
        long outputBytes = (long)batch * sequence * dim * ElementBytes;
        long capacity = (long)batch * heads * sequence * sequence * ElementBytes;
        return keptOffset + outputBytes <= capacity ? new FlashState((ulong)keptOffset, outputBytes) : null;
    }

    /// <summary>The byte offset of the kept output in the probabilities buffer, and its size.</summary>
    private readonly record struct FlashState(ulong KeptOutputOffset, long OutputBytes);

    /// <summary>Whether <see cref="Attention"/> and <see cref="AttentionBackward"/> take the fused kernels for this shape.</summary>
    public bool UsesFlashAttention(int batch, int sequence, int heads, int dim) => FlashLayout(batch, sequence, heads, dim) is not null;

    /// <summary>One block per 64 query (or key) rows of one (batch, head).</summary>
    private static CudaDim3 FlashGrid(int batch, int sequence, int heads) =>
        new((uint)Blocks(sequence, FlashRowsPerBlock), (uint)(batch * heads));
}
