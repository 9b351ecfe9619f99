using System;

namespace Shardwise.Cuda;

/// <summary>The NVIDIA libraries Shardwise calls, each with its own status codes and status strings.</summary>
public enum CudaLibrary
{
    /// <summary>The CUDA driver API (libcuda.so.1); status type CUresult.</summary>
    Driver,

    /// <summary>NVRTC; status type nvrtcResult.</summary>
    Nvrtc,

    /// <summary>cuBLAS; status type cublasStatus_t.</summary>
    Cublas,

    /// <summary>cuBLASLt; status type cublasStatus_t.</summary>
    CublasLt,

    /// <summary>NCCL; status type ncclResult_t.</summary>
    Nccl,
}

/// <summary>A CUDA library call returned a status other than success.</summary>
public class CudaException : Exception
{
    public CudaException(CudaLibrary library, string call, int status, string statusText)
        : base(CudaCheck.FormatMessage(library, call, status, statusText))
    {
        Library = library;
        Call = call;
        Status = status;
        StatusText = statusText;
    }

    /// <summary>The library whose call failed.</summary>
    public CudaLibrary Library { get; }

    /// <summary>The native function that failed, e.g. <c>cuMemAlloc_v2</c>.</summary>
    public string Call { get; }

    /// <summary>The raw status code the call returned.</summary>
    public int Status { get; }

    /// <summary>The library's own description of <see cref="Status"/>.</summary>
    public string StatusText { get; }
}

/// <summary>
/// The one place that turns a CUDA status code into a <see cref="CudaException"/>. Every binding calls the helper for
/// its library (<see cref="Driver"/>, <see cref="Nvrtc"/>, <see cref="Cublas"/>, <see cref="CublasLt"/>,
/// <see cref="Nccl"/>); each asks that library for the status string. <see cref="Check"/> takes the string provider as
/// a delegate so the formatting can be tested without the libraries.
/// </summary>
public static class CudaCheck
{
    /// <summary>Throws a <see cref="CudaException"/> unless <paramref name="status"/> is 0 (success in every library).</summary>
    /// <param name="describe">Returns the library's text for a status; null, empty or throwing gives a fallback text.</param>
    public static void Check(CudaLibrary library, int status, string call, Func<int, string?> describe)
    {
        if (status != 0) throw Failure(library, status, call, describe);
    }

    /// <summary>The exception <see cref="Check"/> throws for a non-zero <paramref name="status"/>.</summary>
    public static CudaException Failure(CudaLibrary library, int status, string call, Func<int, string?> describe)
    {
        string? text;
        try
        {
            text = describe(status);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or CudaException)
        {
            text = null;
        }

        return new CudaException(library, call, status,
            string.IsNullOrWhiteSpace(text) ? "no description available for this status" : text);
    }

    /// <summary>The message of a <see cref="CudaException"/>: the call, the library, the code and its text.</summary>
    public static string FormatMessage(CudaLibrary library, string call, int status, string statusText) =>
        $"{call} failed: {LibraryName(library)} status {status} ({statusText})";

    /// <summary>The human name of a library, as messages write it.</summary>
    public static string LibraryName(CudaLibrary library) => library switch
    {
        CudaLibrary.Driver => "CUDA driver",
        CudaLibrary.Nvrtc => "NVRTC",
        CudaLibrary.Cublas => "cuBLAS",
        CudaLibrary.CublasLt => "cuBLASLt",
        CudaLibrary.Nccl => "NCCL",
        _ => library.ToString(),
    };

    /// <summary>Checks a CUDA driver API result (CUresult).</summary>
    public static void Driver(int status, string call) =>
        Check(CudaLibrary.Driver, status, call, Interop.CuDriver.DescribeStatus);

    /// <summary>Checks an NVRTC result (nvrtcResult).</summary>
    public static void Nvrtc(int status, string call) =>
        Check(CudaLibrary.Nvrtc, status, call, Interop.NvrtcNative.DescribeStatus);

    /// <summary>Checks a cuBLAS status (cublasStatus_t).</summary>
    public static void Cublas(int status, string call) =>
        Check(CudaLibrary.Cublas, status, call, Interop.CublasNative.DescribeStatus);

    /// <summary>Checks a cuBLASLt status (cublasStatus_t).</summary>
    public static void CublasLt(int status, string call) =>
        Check(CudaLibrary.CublasLt, status, call, Interop.CublasLtNative.DescribeStatus);

    /// <summary>Checks an NCCL result (ncclResult_t).</summary>
    public static void Nccl(int status, string call) =>
        Check(CudaLibrary.Nccl, status, call, Interop.NcclNative.DescribeStatus);
}
