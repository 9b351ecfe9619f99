using System.Runtime.InteropServices;
using Shardwise.Native;

namespace Shardwise.Cuda.Interop;

/// <summary>cuBLAS (libcublas.so.13/.12/.11), bound thinly; status is <c>int</c> (cublasStatus_t).</summary>
internal static unsafe partial class CublasNative
{
    private const string Lib = NativeLibraries.Cublas;

    static CublasNative() => NativeLibraries.EnsureRegistered();

    public static string? DescribeStatus(int status) =>
        $"{Marshal.PtrToStringUTF8(cublasGetStatusName(status))}: {Marshal.PtrToStringUTF8(cublasGetStatusString(status))}";

    [LibraryImport(Lib)] public static partial nint cublasGetStatusName(int status);
    [LibraryImport(Lib)] public static partial nint cublasGetStatusString(int status);
    [LibraryImport(Lib, EntryPoint = "cublasGetVersion_v2")] public static partial int cublasGetVersion(nint handle, int* version);
    [LibraryImport(Lib, EntryPoint = "cublasCreate_v2")] public static partial int cublasCreate(nint* handle);
    [LibraryImport(Lib, EntryPoint = "cublasDestroy_v2")] public static partial int cublasDestroy(nint handle);
    [LibraryImport(Lib, EntryPoint = "cublasSetStream_v2")] public static partial int cublasSetStream(nint handle, nint stream);
    [LibraryImport(Lib)] public static partial int cublasSetMathMode(nint handle, int mode);
    [LibraryImport(Lib)] public static partial int cublasSetWorkspace_v2(nint handle, ulong workspace, nuint bytes);

    [LibraryImport(Lib)]
    public static partial int cublasGemmEx(nint handle, int transA, int transB, int m, int n, int k,
        void* alpha, ulong a, int aType, int lda, ulong b, int bType, int ldb,
        void* beta, ulong c, int cType, int ldc, int computeType, int algorithm);

    [LibraryImport(Lib)]
    public static partial int cublasGemmStridedBatchedEx(nint handle, int transA, int transB, int m, int n, int k,
        void* alpha, ulong a, int aType, int lda, long strideA, ulong b, int bType, int ldb, long strideB,
        void* beta, ulong c, int cType, int ldc, long strideC, int batchCount, int computeType, int algorithm);
}
