using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Shardwise.Native;

/// <summary>The CBLAS matrix products Shardwise uses. OpenBLAS threading follows its own environment variables.</summary>
internal static unsafe partial class OpenBlas
{
    public const int RowMajor = 101;
    public const int NoTranspose = 111;
    public const int Transpose = 112;

    static OpenBlas() => NativeLibraries.EnsureRegistered();

    [LibraryImport(NativeLibraries.Blas, EntryPoint = "cblas_sgemm")]
    [UnmanagedCallConv(CallConvs = [typeof(CallConvCdecl)])]
    public static partial void Sgemm(int order, int transA, int transB, int m, int n, int k,
        float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(NativeLibraries.Blas, EntryPoint = "cblas_dgemm")]
    [UnmanagedCallConv(CallConvs = [typeof(CallConvCdecl)])]
    public static partial void Dgemm(int order, int transA, int transB, int m, int n, int k,
        double alpha, double* a, int lda, double* b, int ldb, double beta, double* c, int ldc);
}
