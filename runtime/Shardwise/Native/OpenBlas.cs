using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Shardwise.Native;

/// <summary>
/// The CBLAS matrix products Shardwise uses, on one OpenBLAS thread each (<see cref="UseOneThread"/>): Shardwise splits
/// large products over its own worker pool (Cpu/Gemm.cs).
/// </summary>
internal static unsafe partial class OpenBlas
{
    public const int RowMajor = 101;
    public const int NoTranspose = 111;
    public const int Transpose = 112;

    static OpenBlas() => NativeLibraries.EnsureRegistered();

    /// <summary>
    /// Turns OpenBLAS's own threads off where the library has them (openblas_set_num_threads; a reference BLAS has no
    /// threads). With them on, the products the attention runs inside Shardwise's worker chunks started OpenBLAS's
    /// spinning threads as well, more threads than cores: GPT-2-sized attention took 1.5–1.9× longer, its time mostly
    /// in sched_yield (bench/Shardwise.Bench, OPENBLAS_NUM_THREADS=1 against unset).
    /// </summary>
    public static void UseOneThread()
    {
        if (NativeLibraries.TryLoad(NativeLibraries.Blas, out nint handle, out _, out _) &&
            System.Runtime.InteropServices.NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out nint setThreads))
        {
            ((delegate* unmanaged[Cdecl]<int, void>)setThreads)(1);
        }
    }

    [LibraryImport(NativeLibraries.Blas, EntryPoint = "cblas_sgemm")]
    [UnmanagedCallConv(CallConvs = [typeof(CallConvCdecl)])]
    public static partial void Sgemm(int order, int transA, int transB, int m, int n, int k,
        float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(NativeLibraries.Blas, EntryPoint = "cblas_dgemm")]
    [UnmanagedCallConv(CallConvs = [typeof(CallConvCdecl)])]
    public static partial void Dgemm(int order, int transA, int transB, int m, int n, int k,
        double alpha, double* a, int lda, double* b, int ldb, double beta, double* c, int ldc);
}
