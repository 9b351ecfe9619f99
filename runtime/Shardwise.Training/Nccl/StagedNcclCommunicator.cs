using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using Shardwise.Cuda;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Training.Nccl;

/// <summary>
/// An <see cref="ICommunicator"/> whose collectives run on NCCL, one GPU per rank. The API takes host spans, so each
/// call stages through one device buffer of this rank (grown rarely; <see cref="StagingGrowths"/> counts it): copy
/// host→device, run the NCCL operation on this rank's stream, wait, copy device→host. The wait polls the stream and
/// ncclCommGetAsyncError until <see cref="Timeout"/>; on a timeout or an NCCL error the communicator is aborted
/// (ncclCommAbort, so peers stuck in the same collective fail too) and the call throws
/// <see cref="CommunicationException"/> naming the collective. After a failure every call throws.
/// <para>
/// It is built over an existing communicator of the same ranks (the bootstrap, MPI under mpirun): rank 0 creates
/// the NCCL unique id and broadcasts it through the bootstrap (<see cref="NcclUniqueIdCodec"/>). <see cref="Split"/>
/// splits the bootstrap and builds a new NCCL communicator over the child. NCCL matches point-to-point messages by
/// order per peer, not by tag: tags are checked for range only. Use it from one thread at a time.
/// </para>
/// <para>
/// Device buffers need no staging (<see cref="IDeviceCollective"/>): the in-place collectives and point-to-point messages run on a backend's own
/// device memory, queued on this rank's stream behind an event of the backend's stream, each marked by an event of its
/// own so that <see cref="Complete"/> waits (with the deadline) for just the ones asked for; that is how gradient
/// buckets are reduced while backward goes on.
/// </para>
/// </summary>
public sealed class StagedNcclCommunicator : ICommunicator, IDeviceCollective
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(1);

    private readonly ICommunicator _bootstrap;
    private readonly bool _ownsBootstrap;
    private readonly CudaContext _context;
    private readonly CudaStream _stream;
    private readonly NcclCommunicator _nccl;
    private readonly List<StagedNcclCommunicator> _children = [];
    private readonly Queue<(long Sequence, Collective Collective, CudaEvent Done)> _inFlight = new(); // queued in-place collectives
    private readonly Stack<CudaEvent> _spareEvents = new();
    private long _queuedSequence, _completedSequence;
    private DeviceMemory? _staging;
    private CommunicationException? _failure;
    private bool _disposed;

    /// <summary>
    /// Joins an NCCL communicator of <paramref name="bootstrap"/>'s ranks on device <paramref name="deviceOrdinal"/>;
    /// collective over the bootstrap. With <paramref name="ownsBootstrap"/>, disposing this disposes the bootstrap.
    /// </summary>
    public StagedNcclCommunicator(ICommunicator bootstrap, int deviceOrdinal, bool ownsBootstrap)
    {
        _bootstrap = bootstrap;
        _ownsBootstrap = ownsBootstrap;
        DeviceOrdinal = deviceOrdinal;
        _context = CudaContext.Primary(deviceOrdinal);
        _stream = CudaStream.Create(_context);

        var encoded = new float[NcclUniqueId.Size];
        if (bootstrap.Rank == 0) NcclUniqueIdCodec.ToFloats(NcclCommunicator.GetUniqueId().ToArray()).CopyTo(encoded, 0);
        bootstrap.Broadcast(encoded, root: 0);
        NcclUniqueId id = NcclUniqueId.FromBytes(NcclUniqueIdCodec.FromFloats(encoded));
        // ncclCommInitRank blocks until every rank joins and has no deadline; the barrier first makes an absent rank
        // fail on the bootstrap's deadline instead of hanging here.
        bootstrap.Barrier();
        _nccl = NcclCommunicator.InitRank(bootstrap.Size, id, bootstrap.Rank);
    }

    public int Rank => _bootstrap.Rank;

    public int Size => _bootstrap.Size;

    public TimeSpan Timeout => _bootstrap.Timeout;

    public TrafficCounter Traffic { get; } = new();

    /// <summary>The GPU this rank's NCCL communicator runs on.</summary>
    public int DeviceOrdinal { get; }

    /// <summary>How many times the device staging buffer was (re)allocated; stays small in a training loop.</summary>
    public int StagingGrowths { get; private set; }

    public void AllReduceSum(Span<float> data) => AllReduce(data, NcclDataType.Float32, NcclReduction.Sum);

    /// <summary>An in-place NCCL all-reduce over device memory of this rank's GPU, queued behind <paramref name="after"/>.</summary>
    public DeviceCollectiveTicket AllReduceInPlace(ulong address, long elements, StorageType storage, DeviceReduction reduction, CudaEvent after)
    {
        if (!BeginInPlace(elements, after)) return DeviceCollectiveTicket.None;
        NcclReduction op = reduction switch
        {
            DeviceReduction.Average => NcclReduction.Average,
            DeviceReduction.Sum => NcclReduction.Sum,
            DeviceReduction.Max => NcclReduction.Max,
            _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, null),
        };
        _nccl.AllReduce(address, address, elements, DataType(storage), op, _stream);
        return EndInPlace(Collective.AllReduce, RingTraffic.AllReduce(elements, Size), storage);
    }

    /// <summary>
    /// ncclReduceScatter in place: NCCL's in-place form receives into the send buffer at rank · count, which is this
    /// rank's partition of the buffer.
    /// </summary>
    public DeviceCollectiveTicket ReduceScatterAverageInPlace(ulong address, long partitionElements, StorageType storage, CudaEvent after)
    {
        if (!BeginInPlace(partitionElements, after)) return DeviceCollectiveTicket.None;
        _nccl.ReduceScatter(address, OwnPartition(address, partitionElements, storage), partitionElements, DataType(storage),
            NcclReduction.Average, _stream);
        return EndInPlace(Collective.ReduceScatter, RingTraffic.ReduceScatter(partitionElements, Size), storage);
    }

    /// <summary>ncclAllGather in place: this rank's partition of the receive buffer is its send buffer.</summary>
    public DeviceCollectiveTicket AllGatherInPlace(ulong address, long partitionElements, StorageType storage, CudaEvent after)
    {
        if (!BeginInPlace(partitionElements, after)) return DeviceCollectiveTicket.None;
        _nccl.AllGather(OwnPartition(address, partitionElements, storage), address, partitionElements, DataType(storage), _stream);
        return EndInPlace(Collective.AllGather, RingTraffic.AllGather(partitionElements, Size), storage);
    }

    /// <summary>ncclSend from device memory of this rank's GPU, queued behind <paramref name="after"/>.</summary>
    public DeviceCollectiveTicket Send(ulong address, long elements, StorageType storage, int peer, CudaEvent after)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        if (!BeginInPlace(elements, after)) return DeviceCollectiveTicket.None;
        _nccl.Send(address, elements, DataType(storage), peer, _stream);
        return EndInPlace(Collective.Send, elements, storage, received: false);
    }

    /// <summary>ncclRecv into device memory of this rank's GPU, queued behind <paramref name="after"/>.</summary>
    public DeviceCollectiveTicket Receive(ulong address, long elements, StorageType storage, int peer, CudaEvent after)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        if (!BeginInPlace(elements, after)) return DeviceCollectiveTicket.None;
        _nccl.Receive(address, elements, DataType(storage), peer, _stream);
        return EndInPlace(Collective.Receive, elements, storage, sent: false);
    }

    public void Complete(DeviceCollectiveTicket ticket)
    {
        ThrowIfUnusable();
        if (ticket.Sequence <= _completedSequence) return;
        if (ticket.Sequence > _queuedSequence)
            throw new ArgumentException($"ticket {ticket.Sequence} was never issued by this communicator ({_queuedSequence} so far)", nameof(ticket));
        _context.MakeCurrent();
        foreach (var (sequence, collective, done) in _inFlight)
        {
            if (sequence != ticket.Sequence) continue;
            Wait(collective, done.Synchronize);
            break;
        }
        Completed(ticket.Sequence);
    }

    /// <summary>
    /// Checks the count and that the communicator is usable, makes its context current and orders this stream after
    /// <paramref name="after"/>; false when there is nothing to move.
    /// </summary>
    private bool BeginInPlace(long elements, CudaEvent after)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        ArgumentNullException.ThrowIfNull(after);
        ThrowIfUnusable();
        if (elements == 0) return false;
        _context.MakeCurrent();
        after.MakeStreamWait(_stream);
        return true;
    }

    /// <summary>Marks a queued in-place collective with an event of its own and counts its ring traffic (elements sent and received).</summary>
    private DeviceCollectiveTicket EndInPlace(Collective collective, long ringElements, StorageType storage, bool sent = true, bool received = true)
    {
        CudaEvent done = _spareEvents.Count > 0 ? _spareEvents.Pop() : CudaEvent.Create(_context, timing: false);
        done.Record(_stream);
        _inFlight.Enqueue((++_queuedSequence, collective, done));
        long bytes = ringElements * storage.BytesPerElement();
        Traffic.Add(collective, sent ? bytes : 0, received ? bytes : 0);
        return new DeviceCollectiveTicket(_queuedSequence);
    }

    /// <summary>The collectives up to <paramref name="sequence"/> are done: their events are free again.</summary>
    private void Completed(long sequence)
    {
        while (_inFlight.Count > 0 && _inFlight.Peek().Sequence <= sequence) _spareEvents.Push(_inFlight.Dequeue().Done);
        _completedSequence = Math.Max(_completedSequence, sequence);
    }

    /// <summary>Where this rank's partition starts in a buffer of <see cref="Size"/> partitions.</summary>
    private ulong OwnPartition(ulong address, long partitionElements, StorageType storage)
        => address + (ulong)(Rank * partitionElements * storage.BytesPerElement());

    private static NcclDataType DataType(StorageType storage) => storage switch
    {
        StorageType.Float16 => NcclDataType.Float16,
        StorageType.BFloat16 => NcclDataType.BFloat16,
        _ => NcclDataType.Float32,
    };

    public void AllReduceMax(Span<double> data) => AllReduce(data, NcclDataType.Float64, NcclReduction.Max);

    public void AllReduceSum(Span<double> data) => AllReduce(data, NcclDataType.Float64, NcclReduction.Sum);

    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.ReduceScatter(input.Length, output.Length, Size);
        DeviceMemory buffer = Begin((long)(input.Length + output.Length) * sizeof(float));
        long receive = (long)input.Length * sizeof(float);
        buffer.Upload(input);
        _nccl.ReduceScatter(buffer.Pointer, buffer.Pointer + (ulong)receive, output.Length, NcclDataType.Float32,
            NcclReduction.Sum, _stream);
        Wait(Collective.ReduceScatter);
        buffer.Download(output, receive);
        long bytes = RingTraffic.ReduceScatter(output.Length, Size) * sizeof(float);
        Traffic.Add(Collective.ReduceScatter, bytes, bytes);
    }

    public void AllGather(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.AllGather(input.Length, output.Length, Size);
        DeviceMemory buffer = Begin((long)(input.Length + output.Length) * sizeof(float));
        long receive = (long)input.Length * sizeof(float);
        buffer.Upload(input);
        _nccl.AllGather(buffer.Pointer, buffer.Pointer + (ulong)receive, input.Length, NcclDataType.Float32, _stream);
        Wait(Collective.AllGather);
        buffer.Download(output, receive);
        long bytes = RingTraffic.AllGather(input.Length, Size) * sizeof(float);
        Traffic.Add(Collective.AllGather, bytes, bytes);
    }

    public void Broadcast(Span<float> data, int root)
    {
        CollectiveArguments.Root(root, Size);
        DeviceMemory buffer = Begin((long)data.Length * sizeof(float));
        if (Rank == root) buffer.Upload<float>(data);
        _nccl.Broadcast(buffer.Pointer, buffer.Pointer, data.Length, NcclDataType.Float32, root, _stream);
        Wait(Collective.Broadcast);
        if (Rank != root) buffer.Download(data);
        (long sent, long received) = RingTraffic.Broadcast(data.Length, Size, Rank == root);
        Traffic.Add(Collective.Broadcast, sent * sizeof(float), received * sizeof(float));
    }

    public void Send(ReadOnlySpan<float> data, int peer, int tag)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        CollectiveArguments.Tag(tag);
        DeviceMemory buffer = Begin((long)data.Length * sizeof(float));
        buffer.Upload(data);
        _nccl.Send(buffer.Pointer, data.Length, NcclDataType.Float32, peer, _stream);
        Wait(Collective.Send, peer);
        Traffic.Add(Collective.Send, (long)data.Length * sizeof(float), 0);
    }

    public void Receive(Span<float> data, int peer, int tag)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        CollectiveArguments.Tag(tag);
        DeviceMemory buffer = Begin((long)data.Length * sizeof(float));
        _nccl.Receive(buffer.Pointer, data.Length, NcclDataType.Float32, peer, _stream);
        Wait(Collective.Receive, peer);
        buffer.Download(data);
        Traffic.Add(Collective.Receive, 0, (long)data.Length * sizeof(float));
    }

    /// <summary>A one-element all-reduce: NCCL has no barrier, and this one has the same deadline as the rest.</summary>
    public void Barrier()
    {
        DeviceMemory buffer = Begin(sizeof(float));
        _nccl.AllReduce(buffer.Pointer, buffer.Pointer, 1, NcclDataType.Float32, NcclReduction.Sum, _stream);
        Wait(Collective.Barrier);
    }

    /// <summary>Splits the bootstrap (with its deadline) and builds an NCCL communicator over the child, same device.</summary>
    public ICommunicator Split(int color, int key)
    {
        ThrowIfUnusable();
        ICommunicator childBootstrap = _bootstrap.Split(color, key);
        var child = new StagedNcclCommunicator(childBootstrap, DeviceOrdinal, ownsBootstrap: false);
        _children.Add(child);
        return child;
    }

    /// <summary>
    /// Frees the device resources and the NCCL communicator (destroyed, or already aborted after a failure), the
    /// children first, then the bootstrap when this owns it.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (StagedNcclCommunicator child in _children) child.Dispose();
        _context.MakeCurrent();
        _nccl.Dispose();
        foreach (var (_, _, done) in _inFlight) done.Dispose();
        foreach (CudaEvent spare in _spareEvents) spare.Dispose();
        _staging?.Dispose();
        _stream.Dispose();
        _context.Dispose();
        if (_ownsBootstrap) _bootstrap.Dispose();
    }

    private void AllReduce<T>(Span<T> data, NcclDataType type, NcclReduction reduction) where T : unmanaged
    {
        int elementSize = System.Runtime.InteropServices.Marshal.SizeOf<T>();
        DeviceMemory buffer = Begin((long)data.Length * elementSize);
        buffer.Upload<T>(data);
        _nccl.AllReduce(buffer.Pointer, buffer.Pointer, data.Length, type, reduction, _stream);
        Wait(Collective.AllReduce);
        buffer.Download(data);
        long bytes = RingTraffic.AllReduce(data.Length, Size) * elementSize;
        Traffic.Add(Collective.AllReduce, bytes, bytes);
    }

    /// <summary>Checks the communicator is usable, makes the context current and returns a staging buffer of at least <paramref name="bytes"/>.</summary>
    private DeviceMemory Begin(long bytes)
    {
        ThrowIfUnusable();
        _context.MakeCurrent();
        if (_staging is null || _staging.Bytes < bytes)
        {
            // Doubling keeps reallocations logarithmic in the largest message.
            long size = Math.Max(Math.Max(bytes, 2 * (_staging?.Bytes ?? 0)), 1 << 16);
            _staging?.Dispose();
            _staging = DeviceMemory.Allocate(_context, size);
            StagingGrowths++;
        }

        return _staging;
    }

    /// <summary>
    /// Waits for the stream with the deadline: the blocking synchronize runs on a worker while this thread polls
    /// NCCL's asynchronous error; a timeout or an error aborts the communicator, which releases the worker.
    /// </summary>
    private void Wait(Collective collective, int? peer = null)
    {
        Wait(collective, _stream.Synchronize, peer);
        Completed(_queuedSequence);
    }

    /// <summary>
    /// Runs <paramref name="blockingWait"/> (the stream's or an event's synchronize) on a worker with the deadline, as
    /// <see cref="Wait(Collective, int?)"/>; a whole-stream wait also completes every queued in-place collective.
    /// </summary>
    private void Wait(Collective collective, Action blockingWait, int? peer = null)
    {
        Task synchronized = Task.Run(() =>
        {
            using CudaContext.Scope scope = _context.Push();
            blockingWait();
        });
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (!synchronized.Wait(PollInterval))
        {
            string? error = AsyncError();
            if (error is null && DateTime.UtcNow < deadline) continue;
            string what = error is null
                ? $"timed out after {Timeout.TotalSeconds:0.###} s waiting for its peers"
                : $"failed: {error}";
            throw Fail(collective, peer, $"NCCL {collective} on rank {Rank} of {Size} {what}", synchronized);
        }

        if (synchronized.IsFaulted || AsyncError() is { } late)
        {
            string reason = synchronized.Exception?.InnerException?.Message ?? AsyncError() ?? "unknown";
            throw Fail(collective, peer, $"NCCL {collective} on rank {Rank} of {Size} failed: {reason}", synchronized);
        }
    }

    private string? AsyncError()
    {
        try
        {
            _nccl.CheckAsyncError();
            return null;
        }
        catch (CudaException e)
        {
            return e.Message;
        }
    }

    private CommunicationException Fail(Collective collective, int? peer, string message, Task synchronized)
    {
        _nccl.Abort();
        // The abort stops the kernels, so the synchronize returns; wait briefly so the worker does not outlive us.
        synchronized.Wait(TimeSpan.FromSeconds(5));
        _failure = new CommunicationException(collective, peer, message + "; the NCCL communicator was aborted.");
        return _failure;
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failure is not null)
        {
            throw new CommunicationException(_failure.Collective, _failure.MissingRank,
                $"this NCCL communicator failed earlier ({_failure.Message}); it cannot be used again");
        }
    }
}
