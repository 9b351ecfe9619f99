using System.Runtime.InteropServices;
using Shardwise.Native;

namespace Shardwise.Cuda.Interop;

/// <summary>cuBLASLt (libcublasLt.so.13/.12/.11), bound thinly; status is <c>int</c> (cublasStatus_t).</summary>
internal static unsafe partial class CublasLtNative
{
    private const string Lib = NativeLibraries.CublasLt;

    static CublasLtNative() => NativeLibraries.EnsureRegistered();

    public static string? DescribeStatus(int status) => Marshal.PtrToStringUTF8(cublasLtGetStatusString(status));

    [LibraryImport(Lib)] public static partial nint cublasLtGetStatusString(int status);
    [LibraryImport(Lib)] public static partial nuint cublasLtGetVersion();
    [LibraryImport(Lib)] public static partial int cublasLtCreate(nint* handle);
    [LibraryImport(Lib)] public static partial int cublasLtDestroy(nint handle);

    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescCreate(nint* desc, int computeType, int scaleType);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescDestroy(nint desc);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescSetAttribute(nint desc, int attribute, void* value, nuint bytes);

    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutCreate(nint* layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutDestroy(nint layout);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutSetAttribute(nint layout, int attribute, void* value, nuint bytes);

    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceCreate(nint* preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceDestroy(nint preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceSetAttribute(nint preference, int attribute, void* value, nuint bytes);

    [LibraryImport(Lib)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(nint handle, nint operation, nint aLayout, nint bLayout,
        nint cLayout, nint dLayout, nint preference, int requested, CublasLtHeuristicResult* results, int* returned);

    [LibraryImport(Lib)]
    public static partial int cublasLtMatmul(nint handle, nint operation, void* alpha, ulong a, nint aLayout,
        ulong b, nint bLayout, void* beta, ulong c, nint cLayout, ulong d, nint dLayout, void* algorithm,
        ulong workspace, nuint workspaceBytes, nint stream);
}
