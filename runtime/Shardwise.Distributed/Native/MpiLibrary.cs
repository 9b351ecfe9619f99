using System;
using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Shardwise.Distributed.Native;

/// <summary>
/// The one DllImport resolver of the Shardwise.Distributed assembly (the runtime allows only one per assembly; the
/// Shardwise assembly has its own). Bindings name the logical library <see cref="Name"/>; this maps it to the file
/// names distributions ship, so a machine with only the runtime package (no <c>libmpi.so</c> symlink) still works.
/// </summary>
internal static class MpiLibrary
{
    /// <summary>Logical name of the MPI library (Open MPI preferred; MPICH's soname is libmpi.so.12).</summary>
    public const string Name = "shardwise-mpi";

    private static readonly string[] FileNames = ["libmpi.so.40", "libmpi.so.12", "libmpi.so"];

    private static readonly ConcurrentDictionary<string, IntPtr> Loaded = new(StringComparer.Ordinal);

    static MpiLibrary() => NativeLibrary.SetDllImportResolver(typeof(MpiLibrary).Assembly, Resolve);

    /// <summary>Runs the static constructor, which registers the resolver; call it before the first MPI call.</summary>
    public static void EnsureRegistered()
    {
    }

    /// <summary>The loaded library's handle, for <see cref="NativeLibrary.GetExport"/> of Open MPI's predefined handles.</summary>
    public static IntPtr Handle => Loaded.GetOrAdd(Name, static _ => Load());

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == Name ? Handle : IntPtr.Zero;

    private static IntPtr Load()
    {
        foreach (string fileName in FileNames)
        {
            if (NativeLibrary.TryLoad(fileName, out IntPtr handle)) return handle;
        }

        throw new DllNotFoundException(
            $"Shardwise could not load an MPI library (Open MPI): none of {string.Join(", ", FileNames)} could be " +
            "loaded. To fix it, run scripts/setup.sh (it installs the Debian packages openmpi-bin and libopenmpi-dev).");
    }
}
