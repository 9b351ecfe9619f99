using System;
using System.Runtime.InteropServices;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>ncclUniqueId: 128 opaque bytes that rank 0 creates and every rank receives out of band.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct NcclUniqueId
{
    public const int Size = 128;

    private fixed byte internalBytes[Size];

    /// <summary>The bytes, to send to the other ranks.</summary>
    public readonly byte[] ToArray()
    {
        var bytes = new byte[Size];
        fixed (byte* p = internalBytes) new ReadOnlySpan<byte>(p, Size).CopyTo(bytes);
        return bytes;
    }

    /// <summary>An id from the bytes another rank sent.</summary>
    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"an NCCL unique id is {Size} bytes", nameof(bytes));
        var id = default(NcclUniqueId);
        bytes.CopyTo(new Span<byte>(id.internalBytes, Size));
        return id;
    }
}

/// <summary>ncclDataType_t.</summary>
public enum NcclDataType
{
    Int8 = 0,
    UInt8 = 1,
    Int32 = 2,
    UInt32 = 3,
    Int64 = 4,
    UInt64 = 5,
    Float16 = 6,
    Float32 = 7,
    Float64 = 8,
    BFloat16 = 9,
}

/// <summary>ncclRedOp_t.</summary>
public enum NcclReduction
{
    Sum = 0,
    Product = 1,
    Max = 2,
    Min = 3,
    Average = 4,
}

/// <summary>
/// An NCCL communicator (ncclCommInitRank / ncclCommDestroy) and its collectives. Buffers are device addresses,
/// counts are elements; every call is queued on <c>stream</c>. Create it with this rank's device context current.
/// </summary>
public sealed unsafe class NcclCommunicator : SafeHandle
{
    /// <summary>For marshalling; use <see cref="InitRank"/>.</summary>
    public NcclCommunicator() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    internal nint Value => IsClosed ? throw new ObjectDisposedException(nameof(NcclCommunicator)) : handle;

    /// <summary>The NCCL version, e.g. 22703 for 2.27.3 (ncclGetVersion).</summary>
    public static int Version
    {
        get
        {
            int version;
            CudaCheck.Nccl(NcclNative.ncclGetVersion(&version), "ncclGetVersion");
            return version;
        }
    }

    /// <summary>A fresh unique id (ncclGetUniqueId), made on rank 0.</summary>
    public static NcclUniqueId GetUniqueId()
    {
        NcclUniqueId id;
        CudaCheck.Nccl(NcclNative.ncclGetUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    /// <summary>Joins the communicator of <paramref name="ranks"/> ranks as <paramref name="rank"/> (blocks until all join).</summary>
    public static NcclCommunicator InitRank(int ranks, NcclUniqueId id, int rank)
    {
        nint communicator;
        CudaCheck.Nccl(NcclNative.ncclCommInitRank(&communicator, ranks, id, rank), "ncclCommInitRank");
        var result = new NcclCommunicator();
        result.SetHandle(communicator);
        return result;
    }

    /// <summary>Starts a group of calls that NCCL issues together (ncclGroupStart).</summary>
    public static void GroupStart() => CudaCheck.Nccl(NcclNative.ncclGroupStart(), "ncclGroupStart");

    /// <summary>Ends the group (ncclGroupEnd).</summary>
    public static void GroupEnd() => CudaCheck.Nccl(NcclNative.ncclGroupEnd(), "ncclGroupEnd");

    public void AllReduce(ulong send, ulong receive, long count, NcclDataType type, NcclReduction op,
        CudaStream stream) =>
        Run(NcclNative.ncclAllReduce(send, receive, (nuint)count, (int)type, (int)op, Value, stream.NativeHandle),
            "ncclAllReduce", stream);

    /// <summary>Each rank receives <paramref name="receiveCount"/> reduced elements (its shard).</summary>
    public void ReduceScatter(ulong send, ulong receive, long receiveCount, NcclDataType type, NcclReduction op,
        CudaStream stream) =>
        Run(NcclNative.ncclReduceScatter(send, receive, (nuint)receiveCount, (int)type, (int)op, Value,
            stream.NativeHandle), "ncclReduceScatter", stream);

    /// <summary>Each rank contributes <paramref name="sendCount"/> elements; all receive ranks·sendCount.</summary>
    public void AllGather(ulong send, ulong receive, long sendCount, NcclDataType type, CudaStream stream) =>
        Run(NcclNative.ncclAllGather(send, receive, (nuint)sendCount, (int)type, Value, stream.NativeHandle),
            "ncclAllGather", stream);

    public void Broadcast(ulong send, ulong receive, long count, NcclDataType type, int root, CudaStream stream) =>
        Run(NcclNative.ncclBroadcast(send, receive, (nuint)count, (int)type, root, Value, stream.NativeHandle),
            "ncclBroadcast", stream);

    public void Send(ulong send, long count, NcclDataType type, int peer, CudaStream stream) =>
        Run(NcclNative.ncclSend(send, (nuint)count, (int)type, peer, Value, stream.NativeHandle), "ncclSend", stream);

    public void Receive(ulong receive, long count, NcclDataType type, int peer, CudaStream stream) =>
        Run(NcclNative.ncclRecv(receive, (nuint)count, (int)type, peer, Value, stream.NativeHandle), "ncclRecv",
            stream);

    /// <summary>Throws if the communicator hit an asynchronous error (ncclCommGetAsyncError).</summary>
    public void CheckAsyncError()
    {
        int result;
        CudaCheck.Nccl(NcclNative.ncclCommGetAsyncError(Value, &result), "ncclCommGetAsyncError");
        CudaCheck.Nccl(result, "NCCL asynchronous operation");
    }

    /// <summary>
    /// Gives up on the communicator (ncclCommAbort): its pending operations stop, every rank still waiting on it
    /// fails, and the handle is released without ncclCommDestroy. For timeouts and dead peers; safe from any thread.
    /// </summary>
    public void Abort()
    {
        if (IsClosed) return;
        nint value = handle;
        SetHandleAsInvalid();
        NcclNative.ncclCommAbort(value);
    }

    private void Run(int status, string call, CudaStream stream)
    {
        GC.KeepAlive(stream);
        GC.KeepAlive(this);
        CudaCheck.Nccl(status, call);
    }

    protected override bool ReleaseHandle() => NcclNative.ncclCommDestroy(handle) == 0;
}
