using System;
using Shardwise.Cpu;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// Host memory for one planned slice of a backend's arena that a communicator sends, receives or reduces. On the CPU
/// backend (also under ZeRO's gradient streaming) the arena is host memory: the slice is the arena's own span, nothing
/// is copied. On a device backend a view would download and later upload the whole arena, so the slice goes through a
/// reused host buffer instead: <see cref="Read"/> copies only the slice down (<see cref="ITensorOps{T}.Store"/>),
/// <see cref="Write"/> only the slice up (<see cref="ITensorOps{T}.Load"/>). And when the backend's arenas are on a GPU
/// and the communicator is a device collective on it (NCCL), <see cref="TrySend"/>, <see cref="TryReceive"/> and
/// <see cref="TryAllReduce"/> work on the slice in device memory, with no host copy at all.
/// </summary>
public sealed class SliceExchange(ITensorOps<float> ops)
{
    private readonly bool _inPlace = IsHostMemory(ops);
    private float[] _buffer = [];

    /// <summary>
    /// Sends the slice from device memory when the backend and <paramref name="communicator"/> share a GPU; false (and
    /// nothing sent) otherwise, so the caller sends <see cref="Read"/>'s host copy. Returns once the send is done.
    /// </summary>
    public bool TrySend(Slice slice, ICommunicator communicator, int peer)
        => TryOnDevice(communicator, (device, link) => device.SendSlice(link, slice, peer));

    /// <summary>Receives into the slice's device memory, as <see cref="TrySend"/>; false when the host path must.</summary>
    public bool TryReceive(Slice slice, ICommunicator communicator, int peer)
        => TryOnDevice(communicator, (device, link) => device.ReceiveSlice(link, slice, peer));

    /// <summary>All-reduces the slice in device memory, as <see cref="TrySend"/>; false when the host path must.</summary>
    public bool TryAllReduce(Slice slice, ICommunicator communicator, DeviceReduction reduction)
        => TryOnDevice(communicator, (device, link) => device.AllReduceSlice(link, slice, reduction));

    /// <summary>All-gathers the slice's equal per-rank parts in device memory, in place, as <see cref="TrySend"/>; false when the host path must.</summary>
    public bool TryAllGather(Slice slice, ICommunicator communicator)
        => TryOnDevice(communicator, (device, link) => device.AllGatherSlice(link, slice));

    /// <summary>True when slices go device to device over <paramref name="communicator"/>.</summary>
    public bool OnDevice(ICommunicator communicator) => DeviceLink(communicator) is not null;

    /// <summary>Queues <paramref name="exchange"/> over the device link and waits for it; false when there is no link.</summary>
    private bool TryOnDevice(ICommunicator communicator, Func<IDeviceSliceOps, IDeviceCollective, DeviceCollectiveTicket> exchange)
    {
        if (DeviceLink(communicator) is not var (device, link)) return false;
        link.Complete(exchange(device, link));
        return true;
    }

    private (IDeviceSliceOps Device, IDeviceCollective Link)? DeviceLink(ICommunicator communicator)
        => GradientStreamingOps<float>.Backend(ops) is IDeviceSliceOps device && communicator is IDeviceCollective link && device.SharesDevice(link)
            ? (device, link)
            : null;

    /// <summary>True when the slices are the arena's own memory (the CPU backend): no copy is made.</summary>
    public bool InPlace => _inPlace;

    /// <summary>The slice's current values, for sending or reducing; after changing them, call <see cref="Write"/>.</summary>
    public Span<float> Read(Slice slice)
    {
        if (_inPlace) return View(slice);
        Span<float> host = Buffer(slice);
        ops.Store(slice, host);
        return host;
    }

    /// <summary>Host memory to receive the slice into (its contents undefined on a device backend); then call <see cref="Write"/>.</summary>
    public Span<float> Receiving(Slice slice) => _inPlace ? View(slice) : Buffer(slice);

    /// <summary>Puts <paramref name="values"/> (a span from <see cref="Read"/> or <see cref="Receiving"/>) into the slice.</summary>
    public void Write(Slice slice, ReadOnlySpan<float> values)
    {
        if (!_inPlace) ops.Load(values, slice);
    }

    private Span<float> View(Slice slice) => ops.View(slice.Arena).Slice(checked((int)slice.Offset), checked((int)slice.Length));

    private Span<float> Buffer(Slice slice)
    {
        int length = checked((int)slice.Length);
        if (_buffer.Length < length) _buffer = new float[length];
        return _buffer.AsSpan(0, length);
    }

    private static bool IsHostMemory(ITensorOps<float> ops) => ops switch
    {
        CpuOps<float> => true,
        GradientStreamingOps<float> streaming => IsHostMemory(streaming.Inner),
        _ => false,
    };
}
