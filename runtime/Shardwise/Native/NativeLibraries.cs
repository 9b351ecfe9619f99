using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Shardwise.Native;

/// <summary>
/// The one DllImport resolver of this assembly (the runtime allows only one per assembly). Bindings name a logical
/// library; this maps it to the file names that distributions actually ship, so a missing development symlink
/// (<c>libopenblas.so</c>) does not break a machine that has the runtime package.
/// </summary>
/// <remarks>
/// The CUDA libraries (driver, NVRTC, cuBLAS, cuBLASLt, NCCL) are probed first in the directories that
/// <see cref="CudaSearchPathVariable"/> lists (colon-separated, in order), then by bare file name through the system
/// loader (LD_LIBRARY_PATH, the ldconfig cache, the default directories). A successful load is cached for the life of
/// the process; a failed one is retried on the next request, so setting the variable later takes effect.
/// </remarks>
internal static class NativeLibraries
{
    /// <summary>Logical name of a CBLAS implementation (OpenBLAS preferred).</summary>
    public const string Blas = "shardwise-blas";

    /// <summary>Logical name of the CUDA driver API (libcuda, installed with the NVIDIA driver).</summary>
    public const string Cuda = "shardwise-cuda";

    /// <summary>Logical name of NVRTC, the CUDA runtime compiler.</summary>
    public const string Nvrtc = "shardwise-nvrtc";

    /// <summary>Logical name of cuBLAS.</summary>
    public const string Cublas = "shardwise-cublas";

    /// <summary>Logical name of cuBLASLt.</summary>
    public const string CublasLt = "shardwise-cublaslt";

    /// <summary>Logical name of NCCL.</summary>
    public const string Nccl = "shardwise-nccl";

    /// <summary>Colon-separated directories probed, in order, before the system loader for the CUDA libraries.</summary>
    public const string CudaSearchPathVariable = "SHARDWISE_CUDA_PATH";

    private sealed record Candidates(
        string Description, string[] FileNames, string InstallHint, bool UsesCudaSearchPath = false,
        string? LoadFirst = null);

    private const string CudaHint =
        "install the NVIDIA driver and CUDA libraries, or set " + CudaSearchPathVariable +
        " to the directories that hold them (colon-separated; see docs/cuda.md)";

    private static readonly Dictionary<string, Candidates> Known = new(StringComparer.Ordinal)
    {
        [Blas] = new Candidates(
            "a CBLAS library (OpenBLAS)",
            ["libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3"],
            "run scripts/setup.sh (it installs the Debian package libopenblas0-pthread)"),
        [Cuda] = new Candidates(
            "the CUDA driver API", ["libcuda.so.1"],
            "run on a machine with an NVIDIA GPU and its driver, or set " + CudaSearchPathVariable +
            " to the directory that holds libcuda.so.1 (see docs/cuda.md)",
            UsesCudaSearchPath: true),
        [Nvrtc] = new Candidates(
            "NVRTC, the CUDA runtime compiler",
            ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
            "run scripts/setup-cuda-tools.sh (Debian's libnvrtc11.2), or set " + CudaSearchPathVariable +
            " to the directory that holds libnvrtc (see docs/cuda.md)",
            UsesCudaSearchPath: true),
        // libcublas needs libcublasLt by soname; loading it first from the same search path lets a copy that lives
        // outside the loader's directories (a Python wheel's nvidia/cublas/lib) resolve it.
        [Cublas] = new Candidates(
            "cuBLAS", ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11"], CudaHint,
            UsesCudaSearchPath: true, LoadFirst: CublasLt),
        [CublasLt] = new Candidates(
            "cuBLASLt", ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11"], CudaHint,
            UsesCudaSearchPath: true),
        [Nccl] = new Candidates("NCCL", ["libnccl.so.2"], CudaHint, UsesCudaSearchPath: true),
    };

    private static readonly ConcurrentDictionary<string, (IntPtr Handle, string Path)> Loaded =
        new(StringComparer.Ordinal);

    private static readonly object LoadGate = new();

    static NativeLibraries() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Runs the static constructor, which registers the resolver; call it from every binding's static constructor.</summary>
    public static void EnsureRegistered()
    {
    }

    /// <summary>
    /// The files tried for <paramref name="libraryName"/>, in order: each file name in each directory of
    /// <see cref="CudaSearchPathVariable"/> (CUDA libraries only), then each bare file name.
    /// </summary>
    public static IReadOnlyList<string> CandidatePaths(string libraryName)
    {
        Candidates candidates = Get(libraryName);
        var paths = new List<string>();
        if (candidates.UsesCudaSearchPath)
        {
            foreach (string directory in CudaSearchDirectories())
            {
                foreach (string fileName in candidates.FileNames) paths.Add(Path.Combine(directory, fileName));
            }
        }

        paths.AddRange(candidates.FileNames);
        return paths;
    }

    /// <summary>The directories of <see cref="CudaSearchPathVariable"/>, empty entries dropped.</summary>
    public static IReadOnlyList<string> CudaSearchDirectories() =>
        (Environment.GetEnvironmentVariable(CudaSearchPathVariable) ?? "")
        .Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// Loads <paramref name="libraryName"/> (cached once loaded). False, with a message that names the library, every
    /// file tried and how to fix it, when none loads; never throws for a missing library.
    /// </summary>
    public static bool TryLoad(string libraryName, out IntPtr handle, out string loadedPath, out string failure)
    {
        Candidates candidates = Get(libraryName);
        if (Loaded.TryGetValue(libraryName, out var hit))
        {
            (handle, loadedPath, failure) = (hit.Handle, hit.Path, "");
            return true;
        }

        lock (LoadGate)
        {
            if (Loaded.TryGetValue(libraryName, out hit))
            {
                (handle, loadedPath, failure) = (hit.Handle, hit.Path, "");
                return true;
            }

            if (candidates.LoadFirst is not null) TryLoad(candidates.LoadFirst, out _, out _, out _);
            if (!Probe(libraryName, out handle, out loadedPath, out failure)) return false;
            Loaded[libraryName] = (handle, loadedPath);
            return true;
        }
    }

    /// <summary>
    /// Tries the candidates of <paramref name="libraryName"/> now, in order, ignoring what is already cached; the
    /// caller owns the returned handle (<see cref="NativeLibrary.Free"/>).
    /// </summary>
    public static bool Probe(string libraryName, out IntPtr handle, out string loadedPath, out string failure)
    {
        Candidates candidates = Get(libraryName);
        IReadOnlyList<string> paths = CandidatePaths(libraryName);
        foreach (string path in paths)
        {
            // A full path that does not exist is skipped quietly; a bare name goes to the system loader.
            if (Path.IsPathRooted(path) && !File.Exists(path)) continue;
            if (NativeLibrary.TryLoad(path, out handle))
            {
                loadedPath = path;
                failure = "";
                return true;
            }
        }

        handle = IntPtr.Zero;
        loadedPath = "";
        failure = FailureMessage(candidates, paths);
        return false;
    }

    private static string FailureMessage(Candidates candidates, IReadOnlyList<string> paths)
    {
        string searched = "";
        if (candidates.UsesCudaSearchPath)
        {
            string? value = Environment.GetEnvironmentVariable(CudaSearchPathVariable);
            searched = string.IsNullOrEmpty(value)
                ? $" ({CudaSearchPathVariable} is not set, so only the system loader's paths were searched)"
                : $" ({CudaSearchPathVariable}={value} was searched first, then the system loader's paths)";
        }

        return $"Shardwise could not load {candidates.Description}: none of {string.Join(", ", paths)} " +
               $"could be loaded{searched}. To fix it, {candidates.InstallHint}.";
    }

    private static Candidates Get(string libraryName) =>
        Known.TryGetValue(libraryName, out Candidates? candidates)
            ? candidates
            : throw new ArgumentException($"unknown logical library '{libraryName}'", nameof(libraryName));

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!Known.ContainsKey(libraryName)) return IntPtr.Zero;
        return TryLoad(libraryName, out IntPtr handle, out _, out string failure)
            ? handle
            : throw new DllNotFoundException(failure);
    }
}
