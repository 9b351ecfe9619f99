using System;
using System.Runtime.InteropServices;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>cudaDataType_t values used by cuBLAS, cuBLASLt.</summary>
public enum CudaDataType
{
    Float32 = 0,
    Float64 = 1,
    Float16 = 2,
    Int8 = 3,
    Int32 = 10,
    BFloat16 = 14,
}

/// <summary>cublasComputeType_t.</summary>
public enum CublasComputeType
{
    Compute16F = 64,
    Compute32F = 68,
    Compute32FFast16F = 74,
    Compute32FFast16BF = 75,
    Compute32FFastTF32 = 77,
    Compute64F = 70,
}

/// <summary>cublasOperation_t.</summary>
public enum CublasOperation
{
    None = 0,
    Transpose = 1,
}

/// <summary>cublasMath_t.</summary>
[Flags]
public enum CublasMathMode
{
    Default = 0,
    Pedantic = 2,
    TF32TensorOp = 3,
    DisallowReducedPrecisionReduction = 16,
}

/// <summary>
/// A cuBLAS handle (cublasCreate_v2 / cublasDestroy_v2) and the GEMMs Shardwise uses. cuBLAS is column-major; the
/// caller passes device addresses and leading dimensions as cuBLAS defines them. <c>alpha</c>/<c>beta</c> are host
/// floats (the default pointer mode), which matches every compute type here except <see cref="CublasComputeType.Compute16F"/>.
/// Create it with the device's context current (<see cref="CudaContext.Primary"/>).
/// </summary>
public sealed unsafe class CublasHandle : SafeHandle
{
    /// <summary>For marshalling; use <see cref="Create"/>.</summary>
    public CublasHandle() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    internal nint Value => IsClosed ? throw new ObjectDisposedException(nameof(CublasHandle)) : handle;

    public static CublasHandle Create()
    {
        nint created;
        CudaCheck.Cublas(CublasNative.cublasCreate(&created), "cublasCreate_v2");
        var result = new CublasHandle();
        result.SetHandle(created);
        return result;
    }

    /// <summary>The cuBLAS version, e.g. 130000 for 13.0.0 (cublasGetVersion_v2).</summary>
    public int Version
    {
        get
        {
            int version;
            CudaCheck.Cublas(CublasNative.cublasGetVersion(Value, &version), "cublasGetVersion_v2");
            return version;
        }
    }

    /// <summary>Makes later calls run on <paramref name="stream"/> (cublasSetStream_v2; null: the default stream).</summary>
    public void SetStream(CudaStream? stream)
    {
        CudaCheck.Cublas(CublasNative.cublasSetStream(Value, stream?.NativeHandle ?? 0), "cublasSetStream_v2");
        GC.KeepAlive(stream);
    }

    /// <summary>
    /// Gives cuBLAS <paramref name="workspace"/> for its kernels (cublasSetWorkspace_v2) instead of the small pool it
    /// allocates itself; it must outlive the handle's use. NVIDIA suggests 32 MiB on Hopper, 4 MiB before.
    /// </summary>
    public void SetWorkspace(DeviceMemory workspace)
    {
        CudaCheck.Cublas(CublasNative.cublasSetWorkspace_v2(Value, workspace.Pointer, (nuint)workspace.Bytes),
            "cublasSetWorkspace_v2");
        GC.KeepAlive(workspace);
    }

    /// <summary>cublasSetMathMode: e.g. <see cref="CublasMathMode.Pedantic"/> for bitwise-reference fp32.</summary>
    public void SetMathMode(CublasMathMode mode) =>
        CudaCheck.Cublas(CublasNative.cublasSetMathMode(Value, (int)mode), "cublasSetMathMode");

    /// <summary>C = alpha·op(A)·op(B) + beta·C, column-major (cublasGemmEx, default algorithm).</summary>
    public void GemmEx(CublasOperation transA, CublasOperation transB, int m, int n, int k, float alpha,
        ulong a, CudaDataType aType, int lda, ulong b, CudaDataType bType, int ldb, float beta,
        ulong c, CudaDataType cType, int ldc, CublasComputeType compute = CublasComputeType.Compute32F)
    {
        CudaCheck.Cublas(CublasNative.cublasGemmEx(Value, (int)transA, (int)transB, m, n, k, &alpha,
            a, (int)aType, lda, b, (int)bType, ldb, &beta, c, (int)cType, ldc, (int)compute, DefaultAlgorithm),
            "cublasGemmEx");
    }

    /// <summary>
    /// <paramref name="batchCount"/> GEMMs with fixed strides (elements) between the batch members
    /// (cublasGemmStridedBatchedEx).
    /// </summary>
    public void GemmStridedBatchedEx(CublasOperation transA, CublasOperation transB, int m, int n, int k,
        float alpha, ulong a, CudaDataType aType, int lda, long strideA, ulong b, CudaDataType bType, int ldb,
        long strideB, float beta, ulong c, CudaDataType cType, int ldc, long strideC, int batchCount,
        CublasComputeType compute = CublasComputeType.Compute32F)
    {
        CudaCheck.Cublas(CublasNative.cublasGemmStridedBatchedEx(Value, (int)transA, (int)transB, m, n, k, &alpha,
            a, (int)aType, lda, strideA, b, (int)bType, ldb, strideB, &beta, c, (int)cType, ldc, strideC,
            batchCount, (int)compute, DefaultAlgorithm), "cublasGemmStridedBatchedEx");
    }

    /// <summary>CUBLAS_GEMM_DEFAULT.</summary>
    private const int DefaultAlgorithm = -1;

    protected override bool ReleaseHandle() => CublasNative.cublasDestroy(handle) == 0;
}
