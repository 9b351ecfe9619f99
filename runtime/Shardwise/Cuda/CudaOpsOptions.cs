using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>How <see cref="CudaOps"/> is set up.</summary>
/// <param name="DeviceOrdinal">The device whose primary context the backend uses.</param>
/// <param name="AllowTf32">
/// Opt-in: Linear and attention GEMMs on TF32 tensor cores (cuBLAS compute type 32F_FAST_TF32: inputs rounded to a
/// 10-bit mantissa, fp32 accumulation). Off by default, so results match the CPU backend to fp32 rounding. Applies to
/// fp32 storage only.
/// </param>
/// <param name="KernelCacheDirectory">The PTX cache; null for <see cref="KernelCompiler.DefaultCacheDirectory"/>.</param>
/// <param name="Storage">
/// The element type of the parameter, gradient and activation arenas on the device: fp32, or fp16/bf16 with every
/// kernel and GEMM computing in fp32 (see docs/cuda.md, "16-bit storage"). The host side of the interface stays float.
/// </param>
/// <param name="FusedAttention">
/// Whether fp16/bf16 attention takes the fused flash kernels where the shape allows (docs/cuda.md, "Fused attention")
/// instead of the strided-batched GEMMs around softmax.cu. Null: on, unless the environment variable
/// <c>SHARDWISE_FUSED_ATTENTION</c> is <c>0</c> or <c>false</c>. On by default since the kernels use ldmatrix and
/// cp.async pipelines: on an H200 the GPT-2 124M bf16 step takes 41.3 ms with them against 51.7 ms with the GEMM
/// path (docs/gpu-results.md).
/// </param>
/// <param name="FlashDqFromStoredScores">
/// Whether the flash backward's dK/dV kernel also stores dSᵀ (batch·heads·seq² 16-bit values, the size of the score
/// gradients the GEMM path keeps) and dQ is one product per tile over them (flash_attention_backward_dq_stored),
/// instead of a second kernel that recomputes S, P, dP and dS. Null: on, unless the environment variable
/// <c>SHARDWISE_FLASH_DQ</c> is <c>recompute</c>. On by default since run 12 on the H200: the bf16 GPT-2 step took 33.0
/// ms with it against 34.0 ms (docs/gpu-results.md). Taken only where that scratch is at most
/// <see cref="FlashStoredScoresMaxBytes"/>.
/// </param>
/// <param name="FlashStoredScoresMaxBytes">
/// The largest dSᵀ scratch <see cref="FlashDqFromStoredScores"/> may use (one buffer, shared by every layer); a larger
/// attention (long sequences: it grows with seq²) recomputes dQ instead, so the flash path's memory stays linear in
/// the sequence where it matters. Default 1 GiB: GPT-2's batch 16 × 1024 needs 403 MB; batch 8 × 16 heads × 4096 would
/// need 4.3 GB.
/// </param>
/// <param name="GemmTuning">
/// Opt-in: each Linear product's algorithm is the fastest of cuBLASLt's candidates, timed on the real operands at the
/// shape's first call (<see cref="CudaGemmTuner"/>), and the products without an epilogue go through cuBLASLt too
/// instead of cublasGemmEx. Costs a few milliseconds in the first step; the choice follows timings, so two runs may
/// pick different algorithms (each an fp32 accumulation rounded once), which is why it is not the default for a gain
/// of about 1% (GPT-2's bf16 step on the H200: 33.1 → 32.8 ms, docs/gpu-results.md run 13). Null: the environment
/// variable <c>SHARDWISE_GEMM_TUNING</c> = <c>1</c> or <c>true</c> turns it on.
/// </param>
/// <param name="BiasGradientByProduct">
/// Opt-in: a bias gradient the weight-gradient GEMM's epilogue does not give (every one in fp16/bf16 storage) is
/// Σ_rows dy as one cuBLAS product dyᵀ·1 with an fp32 result, added into dBias with one rounding, instead of the two
/// column-sum kernels (add_bias_backward_partial/_reduce, 1.1 ms per GPT-2 step on the H200). Measured in run 14
/// (docs/gpu-results.md): the bf16 step took 32.5 ms with it against 32.4 without (cuBLAS reads dy at about 2.7 TB/s
/// for these one-column products), so it stays off. Null: the environment variable <c>SHARDWISE_BIAS_GRADIENT</c> =
/// <c>product</c> turns it on.
/// </param>
/// <param name="FusedCrossEntropy">
/// Whether <see cref="CudaOps.CrossEntropyWithGradient"/> (the loss of the generated ForwardBackward, which train and
/// bench run) is one kernel that reads each row of logits once, keeping it in shared memory for the gradient pass
/// (crossentropy_forward_backward), instead of the forward and backward kernels (two reads). Null: on, unless the
/// environment variable <c>SHARDWISE_CROSS_ENTROPY</c> is <c>pair</c>. On by default (1.65 GB less
/// traffic per GPT-2 step): run 14 on the H200 measured the bf16 step at 32.4 ms fused against 32.8 ms with the pair
/// (docs/gpu-results.md).
/// </param>
public sealed record CudaOpsOptions(int DeviceOrdinal = 0, bool AllowTf32 = false, string? KernelCacheDirectory = null,
    StorageType Storage = StorageType.Float32, bool? FusedAttention = null, bool? FlashDqFromStoredScores = null,
    bool? GemmTuning = null, bool? BiasGradientByProduct = null, long FlashStoredScoresMaxBytes = 1L << 30,
    bool? FusedCrossEntropy = null)
{
    /// <summary>The environment variable that picks the pair of cross-entropy kernels (pair) when <see cref="FusedCrossEntropy"/> is null.</summary>
    public const string CrossEntropyVariable = "SHARDWISE_CROSS_ENTROPY";

    /// <summary><see cref="FusedCrossEntropy"/>, or the environment's choice when it is null.</summary>
    public bool UsesFusedCrossEntropy =>
        FusedCrossEntropy ?? System.Environment.GetEnvironmentVariable(CrossEntropyVariable) is not "pair";

    /// <summary>The environment variable that picks the bias gradient's path when <see cref="BiasGradientByProduct"/> is null.</summary>
    public const string BiasGradientVariable = "SHARDWISE_BIAS_GRADIENT";

    /// <summary><see cref="BiasGradientByProduct"/>, or the environment's choice when it is null.</summary>
    public bool UsesBiasGradientByProduct =>
        BiasGradientByProduct ?? System.Environment.GetEnvironmentVariable(BiasGradientVariable) is "product";

    /// <summary>The environment variable that turns GEMM tuning on (1, true) when <see cref="GemmTuning"/> is null.</summary>
    public const string GemmTuningVariable = "SHARDWISE_GEMM_TUNING";

    /// <summary><see cref="GemmTuning"/>, or the environment's choice when it is null.</summary>
    public bool UsesGemmTuning =>
        GemmTuning ?? System.Environment.GetEnvironmentVariable(GemmTuningVariable) is "1" or "true";

    /// <summary>The environment variable that picks the flash dQ kernel when <see cref="FlashDqFromStoredScores"/> is null.</summary>
    public const string FlashDqVariable = "SHARDWISE_FLASH_DQ";

    /// <summary><see cref="FlashDqFromStoredScores"/>, or the environment's choice when it is null.</summary>
    public bool UsesFlashDqFromStoredScores =>
        FlashDqFromStoredScores ?? System.Environment.GetEnvironmentVariable(FlashDqVariable) is not "recompute";

    /// <summary>The environment variable that turns the fused attention off (0, false) when <see cref="FusedAttention"/> is null.</summary>
    public const string FusedAttentionVariable = "SHARDWISE_FUSED_ATTENTION";

    /// <summary><see cref="FusedAttention"/>, or the environment's choice when it is null.</summary>
    public bool UsesFusedAttention =>
        FusedAttention ?? System.Environment.GetEnvironmentVariable(FusedAttentionVariable) is not ("0" or "false");
}
