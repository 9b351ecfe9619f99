using System.Runtime.InteropServices;
using Shardwise.Native;

namespace Shardwise.Cuda.Interop;

/// <summary>NCCL (libnccl.so.2), bound thinly; status is <c>int</c> (ncclResult_t), communicators are <c>nint</c>.</summary>
internal static unsafe partial class NcclNative
{
    private const string Lib = NativeLibraries.Nccl;

    static NcclNative() => NativeLibraries.EnsureRegistered();

    public static string? DescribeStatus(int status) => Marshal.PtrToStringUTF8(ncclGetErrorString(status));

    [LibraryImport(Lib)] public static partial nint ncclGetErrorString(int result);
    [LibraryImport(Lib)] public static partial int ncclGetVersion(int* version);
    [LibraryImport(Lib)] public static partial int ncclGetUniqueId(NcclUniqueId* id);
    [LibraryImport(Lib)] public static partial int ncclCommInitRank(nint* communicator, int ranks, NcclUniqueId id, int rank);
    [LibraryImport(Lib)] public static partial int ncclCommDestroy(nint communicator);
    [LibraryImport(Lib)] public static partial int ncclCommAbort(nint communicator);
    [LibraryImport(Lib)] public static partial int ncclCommGetAsyncError(nint communicator, int* result);

    [LibraryImport(Lib)]
    public static partial int ncclAllReduce(ulong send, ulong receive, nuint count, int type, int op, nint communicator, nint stream);

    [LibraryImport(Lib)]
    public static partial int ncclReduceScatter(ulong send, ulong receive, nuint receiveCount, int type, int op, nint communicator, nint stream);

    [LibraryImport(Lib)]
    public static partial int ncclAllGather(ulong send, ulong receive, nuint sendCount, int type, nint communicator, nint stream);

    [LibraryImport(Lib)]
    public static partial int ncclBroadcast(ulong send, ulong receive, nuint count, int type, int root, nint communicator, nint stream);

    [LibraryImport(Lib)] public static partial int ncclSend(ulong send, nuint count, int type, int peer, nint communicator, nint stream);
    [LibraryImport(Lib)] public static partial int ncclRecv(ulong receive, nuint count, int type, int peer, nint communicator, nint stream);
    [LibraryImport(Lib)] public static partial int ncclGroupStart();
    [LibraryImport(Lib)] public static partial int ncclGroupEnd();
}
