using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Shardwise.Native;

/// <summary>
/// The one DllImport resolver of this assembly (the runtime allows only one per assembly). Bindings name a logical
/// library; this maps it to the file names that distributions actually ship, so a missing development symlink
/// (<c>libopenblas.so</c>) does not break a machine that has the runtime package.
/// </summary>
internal static class NativeLibraries
{
    /// <summary>Logical name of a CBLAS implementation (OpenBLAS preferred).</summary>
    public const string Blas = "shardwise-blas";

    private sealed record Candidates(string Description, string[] FileNames, string InstallHint);

    // Later bindings (CUDA, MPI) add their entries here.
    private static readonly Dictionary<string, Candidates> Known = new(StringComparer.Ordinal)
    {
        [Blas] = new Candidates(
            "a CBLAS library (OpenBLAS)",
            ["libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3"],
            "run scripts/setup.sh (it installs the Debian package libopenblas0-pthread)"),
    };

    private static readonly ConcurrentDictionary<string, IntPtr> Loaded = new(StringComparer.Ordinal);

    static NativeLibraries() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Runs the static constructor, which registers the resolver; call it from every binding's static constructor.</summary>
    public static void EnsureRegistered()
    {
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!Known.TryGetValue(libraryName, out Candidates? candidates)) return IntPtr.Zero;
        return Loaded.GetOrAdd(libraryName, static (_, c) => Load(c), candidates);
    }

    private static IntPtr Load(Candidates candidates)
    {
        foreach (string fileName in candidates.FileNames)
        {
            if (NativeLibrary.TryLoad(fileName, out IntPtr handle)) return handle;
        }

        throw new DllNotFoundException(
            $"Shardwise could not load {candidates.Description}: none of {string.Join(", ", candidates.FileNames)} " +
            $"could be loaded. To fix it, {candidates.InstallHint}.");
    }
}
