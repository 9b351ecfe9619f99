using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Precision;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>
/// For the tests in category "Gpu": without a usable GPU they are inconclusive (never passed), unless
/// scripts/gpu-suite.sh set SHARDWISE_REQUIRE_GPU=1, where a missing GPU or library fails them.
/// </summary>
public static class GpuSupport
{
    public static bool GpuRequired => Environment.GetEnvironmentVariable("SHARDWISE_REQUIRE_GPU") == "1";

    /// <summary>Set to 1 by Shardwise.CudaEmulation.Tests, whose device runs every kernel on the CPU's SIMT emulator.</summary>
    public const string EmulatedDeviceVariable = "SHARDWISE_EMULATED_DEVICE";

    /// <summary>
    /// True on the emulated device, where a kernel costs thousands of times more than on a GPU: the model tests then
    /// run fewer steps (never looser tolerances).
    /// </summary>
    public static bool Emulated => Environment.GetEnvironmentVariable(EmulatedDeviceVariable) == "1";

    public static void Unavailable(string reason)
    {
        if (GpuRequired) Assert.Fail($"SHARDWISE_REQUIRE_GPU=1, but {reason}");
        Assert.Inconclusive(reason);
    }

    /// <summary>Returns when CUDA is usable; otherwise the test ends inconclusive (fails under SHARDWISE_REQUIRE_GPU=1).</summary>
    public static void RequireGpu()
    {
        if (!CudaRuntime.TryInitialize(out string reason)) Unavailable($"no GPU: {reason}");
        Console.WriteLine(reason);
    }

    /// <summary>
    /// A CudaOps on device 0 storing <paramref name="storage"/>, or the test ends inconclusive (fails under
    /// SHARDWISE_REQUIRE_GPU=1).
    /// </summary>
    public static CudaOps RequireCudaOps(string? kernelCache = null, StorageType storage = StorageType.Float32,
        bool? fusedAttention = null, bool? flashDqFromStoredScores = null, bool? gemmTuning = null,
        bool? biasGradientByProduct = null, long flashStoredScoresMaxBytes = 1L << 30, bool? fusedCrossEntropy = null)
    {
        RequireGpu();
        return new CudaOps(new CudaOpsOptions(KernelCacheDirectory: kernelCache, Storage: storage, FusedAttention: fusedAttention,
            FlashDqFromStoredScores: flashDqFromStoredScores, GemmTuning: gemmTuning, BiasGradientByProduct: biasGradientByProduct,
            FlashStoredScoresMaxBytes: flashStoredScoresMaxBytes, FusedCrossEntropy: fusedCrossEntropy));
    }
}
