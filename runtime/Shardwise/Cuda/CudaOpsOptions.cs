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
public sealed record CudaOpsOptions(int DeviceOrdinal = 0, bool AllowTf32 = false, string? KernelCacheDirectory = null,
    StorageType Storage = StorageType.Float32);
