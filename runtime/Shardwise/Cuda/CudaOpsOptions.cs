namespace Shardwise.Cuda;

/// <summary>How <see cref="CudaOps"/> is set up.</summary>
/// <param name="DeviceOrdinal">The device whose primary context the backend uses.</param>
/// <param name="AllowTf32">
/// Opt-in: Linear and attention GEMMs on TF32 tensor cores (cuBLAS compute type 32F_FAST_TF32: inputs rounded to a
/// 10-bit mantissa, fp32 accumulation). Off by default, so results match the CPU backend to fp32 rounding.
/// </param>
/// <param name="KernelCacheDirectory">The PTX cache; null for <see cref="KernelCompiler.DefaultCacheDirectory"/>.</param>
public sealed record CudaOpsOptions(int DeviceOrdinal = 0, bool AllowTf32 = false, string? KernelCacheDirectory = null);
