using System;
using System.Runtime.InteropServices;

namespace Shardwise.Distributed.Native;

/// <summary>
/// Thin bindings to the MPI C API, only what <see cref="Mpi.MpiCommunicator"/> needs. Handles (MPI_Comm, MPI_Datatype,
/// MPI_Op, MPI_Errhandler, MPI_Request) are pointers in Open MPI, so they are <see cref="IntPtr"/> here; the predefined
/// ones are addresses of exported globals (<see cref="MpiHandles"/>). Every call returns an MPI error code, which
/// callers pass to <see cref="MpiErrors.Check"/>. Only the nonblocking collectives are bound: the communicator polls
/// them with <see cref="Test"/> so every call can honour a deadline.
/// </summary>
internal static unsafe partial class Mpi
{
    public const int Success = 0;
    public const int AnySource = -1;
    public const int AnyTag = -1;
    public const int MaxErrorString = 256;

    /// <summary>MPI_THREAD_SERIALIZED: any thread may call, one at a time (an enum value in mpi.h).</summary>
    public const int ThreadSerialized = 2;

    /// <summary>MPI_IN_PLACE is <c>(void*)1</c> in Open MPI's mpi.h.</summary>
    public static readonly void* InPlace = (void*)1;

    static Mpi() => MpiLibrary.EnsureRegistered();

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Initialized")]
    public static partial int Initialized(int* flag);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Finalized")]
    public static partial int Finalized(int* flag);

    /// <summary>MPI_Init_thread rather than MPI_Init: .NET code may call from different threads (one at a time).</summary>
    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Init_thread")]
    public static partial int InitThread(int* argc, byte*** argv, int required, int* provided);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Finalize")]
    public static partial int Finalize();

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Error_string")]
    public static partial int ErrorString(int errorCode, byte* text, int* length);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Comm_set_errhandler")]
    public static partial int CommSetErrhandler(IntPtr comm, IntPtr errhandler);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Comm_rank")]
    public static partial int CommRank(IntPtr comm, int* rank);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Comm_size")]
    public static partial int CommSize(IntPtr comm, int* size);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Comm_dup")]
    public static partial int CommDup(IntPtr comm, IntPtr* newComm);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Comm_split")]
    public static partial int CommSplit(IntPtr comm, int color, int key, IntPtr* newComm);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Comm_free")]
    public static partial int CommFree(IntPtr* comm);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Iallreduce")]
    public static partial int Iallreduce(void* send, void* receive, int count, IntPtr datatype, IntPtr op, IntPtr comm,
        IntPtr* request);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Ireduce_scatter_block")]
    public static partial int IreduceScatterBlock(void* send, void* receive, int receiveCount, IntPtr datatype,
        IntPtr op, IntPtr comm, IntPtr* request);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Iallgather")]
    public static partial int Iallgather(void* send, int sendCount, IntPtr sendType, void* receive, int receiveCount,
        IntPtr receiveType, IntPtr comm, IntPtr* request);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Ibcast")]
    public static partial int Ibcast(void* buffer, int count, IntPtr datatype, int root, IntPtr comm, IntPtr* request);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Ibarrier")]
    public static partial int Ibarrier(IntPtr comm, IntPtr* request);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Isend")]
    public static partial int Isend(void* buffer, int count, IntPtr datatype, int destination, int tag, IntPtr comm,
        IntPtr* request);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Irecv")]
    public static partial int Irecv(void* buffer, int count, IntPtr datatype, int source, int tag, IntPtr comm,
        IntPtr* request);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Recv")]
    public static partial int Recv(void* buffer, int count, IntPtr datatype, int source, int tag, IntPtr comm,
        MpiStatus* status);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Iprobe")]
    public static partial int Iprobe(int source, int tag, IntPtr comm, int* flag, MpiStatus* status);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Test")]
    public static partial int Test(IntPtr* request, int* flag, MpiStatus* status);

    [LibraryImport(MpiLibrary.Name, EntryPoint = "MPI_Get_count")]
    public static partial int GetCount(MpiStatus* status, IntPtr datatype, int* count);
}
