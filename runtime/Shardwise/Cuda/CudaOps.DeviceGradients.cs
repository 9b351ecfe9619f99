using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>
/// Data-parallel exchanges in device memory (<see cref="IDeviceGradientOps"/>): NCCL on the gradient and parameter
/// arenas themselves. The collective runs on a stream of its own: each is queued behind an event recorded on this
/// backend's stream, so the host never waits for the kernels before it, only (where the result is needed at once) for
/// the collective.
/// </summary>
public sealed partial class CudaOps : IDeviceGradientOps, IDeviceSliceOps
{
    private CudaEvent? collectiveOrder; // recorded before each collective; the collective's stream waits for it

    public bool SharesDevice(IDeviceCollective collective)
    {
        ArgumentNullException.ThrowIfNull(collective);
        return collective.DeviceOrdinal == context.DeviceOrdinal;
    }

    public void AverageGradients(IDeviceCollective collective)
    {
        collective.Complete(AverageGradientRange(collective, 0, Arena(Ops.Arena.Gradients).Length));
    }

    public DeviceCollectiveTicket AverageGradientRange(IDeviceCollective collective, long start, long length)
    {
        if (!WidensGradients) return AllReduceSlice(collective, new Slice(Ops.Arena.Gradients, start, length), DeviceReduction.Average);
        AverageInFloat32(collective, SliceAddress(new Slice(Ops.Arena.Gradients, start, length)), length, partitionElements: 0);
        return DeviceCollectiveTicket.None;
    }

    public DeviceCollectiveTicket SendSlice(IDeviceCollective link, Slice slice, int peer)
    {
        CudaEvent after = BeginCollective(link);
        return link.Send(SliceAddress(slice), slice.Length, Storage, peer, after);
    }

    public DeviceCollectiveTicket ReceiveSlice(IDeviceCollective link, Slice slice, int peer)
    {
        CudaEvent after = BeginCollective(link);
        return link.Receive(SliceAddress(slice), slice.Length, Storage, peer, after);
    }

    public DeviceCollectiveTicket AllReduceSlice(IDeviceCollective link, Slice slice, DeviceReduction reduction)
    {
        CudaEvent after = BeginCollective(link);
        return link.AllReduceInPlace(SliceAddress(slice), slice.Length, Storage, reduction, after);
    }

    public DeviceCollectiveTicket AllGatherSlice(IDeviceCollective link, Slice slice)
    {
        if (slice.Length % link.Size != 0)
            throw new ArgumentException($"{slice} does not split into {link.Size} equal parts", nameof(slice));
        CudaEvent after = BeginCollective(link);
        return link.AllGatherInPlace(SliceAddress(slice), slice.Length / link.Size, Storage, after);
    }

    private ulong SliceAddress(Slice slice)
    {
        DeviceArena arena = Arena(slice.Arena);
        if (slice.Offset < 0 || slice.Length < 0 || slice.Offset + slice.Length > arena.Length)
            throw new ArgumentOutOfRangeException(nameof(slice), $"{slice} is not inside the {slice.Arena} arena's {arena.Length} elements");
        return arena.Address(slice.Offset);
    }

    public void PadForPartitions(long elements)
    {
        EnsureCurrent();
        Arena(Ops.Arena.Parameters).Reserve(context, allocations, elements);
        Arena(Ops.Arena.Gradients).Reserve(context, allocations, elements);
    }

    public void ReduceScatterGradients(IDeviceCollective collective, long partitionElements)
    {
        DeviceArena gradients = Arena(Ops.Arena.Gradients);
        RequirePartitions(gradients, collective, partitionElements);
        if (WidensGradients) AverageInFloat32(collective, gradients.Address(0), partitionElements * collective.Size, partitionElements);
        else collective.Complete(collective.ReduceScatterAverageInPlace(gradients.Address(0), partitionElements, Storage, BeginCollective(collective)));
    }

    public void AllGatherParameters(IDeviceCollective collective, long partitionElements)
    {
        CudaEvent after = BeginCollective(collective);
        DeviceArena parameters = Arena(Ops.Arena.Parameters);
        RequirePartitions(parameters, collective, partitionElements);
        collective.Complete(collective.AllGatherInPlace(parameters.Address(0), partitionElements, Storage, after));
        // The mirror (if any) is older now; a later View reads the device again.
    }

    /// <summary>
    /// Before a collective on this backend's memory: checks the device, flushes host-view writes, and records the event
    /// the collective's stream waits for (it runs after every kernel queued so far, while the host goes on).
    /// </summary>
    private CudaEvent BeginCollective(IDeviceCollective collective)
    {
        if (!SharesDevice(collective))
            throw new ArgumentException($"the collective runs on device {collective.DeviceOrdinal}, this backend on {context.DeviceOrdinal}", nameof(collective));
        Begin(); // a host view written since the last operation goes to the device first
        collectiveOrder ??= CudaEvent.Create(context, timing: false);
        collectiveOrder.Record();
        return collectiveOrder;
    }

    private static void RequirePartitions(DeviceArena arena, IDeviceCollective collective, long partitionElements)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(partitionElements);
        long needed = partitionElements * collective.Size;
        if (needed < arena.Length || needed > arena.Capacity)
            throw new ArgumentException(
                $"{collective.Size} partitions of {partitionElements} elements must cover the arena's {arena.Length} elements within its " +
                $"{arena.Capacity} allocated (call PadForPartitions({needed}) first)", nameof(partitionElements));
    }
}
