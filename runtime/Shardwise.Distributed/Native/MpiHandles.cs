using System;
using System.Runtime.InteropServices;

namespace Shardwise.Distributed.Native;

/// <summary>
/// Open MPI's predefined handles. mpi.h defines e.g. <c>MPI_COMM_WORLD</c> as <c>((MPI_Comm)&amp;ompi_mpi_comm_world)</c>,
/// so each handle is the address of an exported global, which <see cref="NativeLibrary.GetExport"/> returns.
/// (MPICH uses integer constants instead; this binding supports Open MPI only and says so if the symbols are missing.)
/// </summary>
internal sealed class MpiHandles
{
    public IntPtr CommWorld { get; } = Export("ompi_mpi_comm_world");

    public IntPtr Float { get; } = Export("ompi_mpi_float");

    public IntPtr Double { get; } = Export("ompi_mpi_double");

    public IntPtr Int { get; } = Export("ompi_mpi_int");

    public IntPtr Sum { get; } = Export("ompi_mpi_op_sum");

    public IntPtr Max { get; } = Export("ompi_mpi_op_max");

    public IntPtr ErrorsReturn { get; } = Export("ompi_mpi_errors_return");

    public static MpiHandles Instance => Lazy.Value;

    private static readonly Lazy<MpiHandles> Lazy = new(() => new MpiHandles());

    private static IntPtr Export(string symbol)
    {
        if (NativeLibrary.TryGetExport(MpiLibrary.Handle, symbol, out IntPtr address)) return address;
        throw new EntryPointNotFoundException(
            $"The MPI library has no symbol {symbol}: Shardwise's MPI bindings need Open MPI (libmpi.so.40). " +
            "Run scripts/setup.sh to install it.");
    }
}
