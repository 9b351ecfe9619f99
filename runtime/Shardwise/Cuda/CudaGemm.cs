using System;
using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>
/// Row-major matrix products on cuBLAS over the backend's storage type (fp32, fp16 or bf16 operands and result), with the CPU backend's convention (<c>Cpu/Gemm.cs</c>):
/// <c>C[m, n] = alpha · op(A) · op(B) + beta · C</c>, every matrix row-major with its own leading dimension. cuBLAS is
/// column-major, and a row-major matrix read column-major is its transpose, so the call computes
/// <c>Cᵀ = op(B)ᵀ · op(A)ᵀ</c>: the operands swap places, the transpose flags and leading dimensions stay.
/// <para>
/// Compute type: <see cref="CublasComputeType.Compute32F"/> with fp32 alpha/beta, always accumulating in fp32. In fp32
/// storage that is true fp32 (the CPU backend's results to rounding) unless TF32 was asked for
/// (<see cref="CudaOpsOptions.AllowTf32"/>), which rounds the inputs of each product to a 10-bit mantissa on tensor
/// cores. In fp16/bf16 storage A, B and C are CUDA_R_16F or CUDA_R_16BF with CUBLAS_COMPUTE_32F and a CUDA_R_32F
/// scale type, one of cublasGemmEx's listed combinations, which cuBLAS runs on tensor cores (16-bit products, fp32
/// accumulation, C rounded once to 16 bits), with CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION so that split-K
/// partial sums are also reduced in fp32; AllowTf32 does not apply. The handle gets a workspace of its own sized for Hopper (32 MiB), allocated once.
/// Everything runs on the legacy default stream, like the kernels and the synchronous copies of <see cref="CudaOps"/>.
/// </para>
/// </summary>
internal sealed class CudaGemm : IDisposable
{
    /// <summary>NVIDIA's suggested cuBLAS workspace for Hopper (H100/H200); more than enough for Ampere.</summary>
    public const long WorkspaceBytes = 32L << 20;

    private readonly CublasHandle handle;
    private readonly DeviceMemory workspace;
    private readonly CublasComputeType compute;
    private readonly CudaDataType type;

    public CudaGemm(CudaContext context, DeviceAllocationCounter counter, bool allowTf32, StorageType storage)
    {
        type = DataType(storage);
        ElementBytes = storage.BytesPerElement();
        handle = CublasHandle.Create();
        handle.SetStream(null);
        workspace = counter.Allocate(context, WorkspaceBytes);
        handle.SetWorkspace(workspace);
        compute = allowTf32 && storage == StorageType.Float32 ? CublasComputeType.Compute32FFastTF32 : CublasComputeType.Compute32F;
        // With 16-bit C cuBLAS may otherwise reduce split-K partial products in the output type (PyTorch's
        // allow_fp16_reduced_precision_reduction); every sum stays fp32 here, rounded once into C.
        if (storage != StorageType.Float32) handle.SetMathMode(CublasMathMode.DisallowReducedPrecisionReduction);
    }

    public CublasComputeType ComputeType => compute;

    /// <summary>The handle's workspace, which the cuBLASLt calls on the same stream share (<see cref="CudaEpilogueGemm"/>).</summary>
    internal DeviceMemory Workspace => workspace;

    /// <summary>Told "gemm M×N×K" (with "×count" when batched) before each call, for CudaOps' profiler; null: nothing.</summary>
    public Action<string>? Trace { get; set; }

    /// <summary>The cuBLAS type of every operand and result.</summary>
    public CudaDataType OperandType => type;

    /// <summary>The cudaDataType_t of a storage type.</summary>
    public static CudaDataType DataType(StorageType storage) => storage switch
    {
        StorageType.Float32 => CudaDataType.Float32,
        StorageType.Float16 => CudaDataType.Float16,
        StorageType.BFloat16 => CudaDataType.BFloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(storage), storage, "Unknown storage type."),
    };

    /// <summary>Bytes of one operand or result element (the storage type's).</summary>
    public int ElementBytes { get; }

    /// <summary>C[m, n] = alpha · op(A) · op(B) + beta · C, row-major (addresses of matrices in the storage type).</summary>
    public void Multiply(bool transposeA, bool transposeB, int m, int n, int k, float alpha, ulong a, int lda,
        ulong b, int ldb, float beta, ulong c, int ldc)
    {
        if (m == 0 || n == 0) return;
        Trace?.Invoke($"gemm {m}×{n}×{k}{(transposeA ? " Aᵀ" : "")}{(transposeB ? " Bᵀ" : "")}");
        handle.GemmEx(Operation(transposeB), Operation(transposeA), n, m, k, alpha, b, type, ldb,
            a, type, lda, beta, c, type, ldc, compute);
    }

    /// <summary>
    /// As <see cref="Multiply"/> with C in fp32 whatever the storage type (16-bit operands, fp32 result: one of
    /// cublasGemmEx's listed combinations), for sums the caller adds into stored values with one rounding.
    /// </summary>
    public void MultiplyToFloat(bool transposeA, bool transposeB, int m, int n, int k, float alpha, ulong a, int lda,
        ulong b, int ldb, float beta, ulong c, int ldc)
    {
        if (m == 0 || n == 0) return;
        Trace?.Invoke($"gemm {m}×{n}×{k}{(transposeA ? " Aᵀ" : "")}{(transposeB ? " Bᵀ" : "")} → fp32");
        handle.GemmEx(Operation(transposeB), Operation(transposeA), n, m, k, alpha, b, type, ldb,
            a, type, lda, beta, c, CudaDataType.Float32, ldc, compute);
    }

    /// <summary>
    /// <paramref name="count"/> products as <see cref="Multiply"/>, member i using A + i·strideA, B + i·strideB,
    /// C + i·strideC (strides in elements).
    /// </summary>
    public void MultiplyBatched(bool transposeA, bool transposeB, int m, int n, int k, float alpha, ulong a, int lda,
        long strideA, ulong b, int ldb, long strideB, float beta, ulong c, int ldc, long strideC, int count)
    {
        if (m == 0 || n == 0 || count == 0) return;
        Trace?.Invoke($"gemm {m}×{n}×{k}{(transposeA ? " Aᵀ" : "")}{(transposeB ? " Bᵀ" : "")} batched ×{count}");
        handle.GemmStridedBatchedEx(Operation(transposeB), Operation(transposeA), n, m, k, alpha,
            b, type, ldb, strideB, a, type, lda, strideA, beta, c, type, ldc, strideC, count, compute);
    }

    private static CublasOperation Operation(bool transpose) => transpose ? CublasOperation.Transpose : CublasOperation.None;

    public void Dispose()
    {
        handle.Dispose();
        workspace.Dispose();
    }
}
