using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>
/// Data-parallel exchanges in device memory (<see cref="IDeviceGradientOps"/>): NCCL on the gradient and parameter
/// arenas themselves. The collective runs on a stream of its own, so each call first waits for this backend's stream.
/// </summary>
public sealed partial class CudaOps : IDeviceGradientOps
{
    public bool SharesDevice(IDeviceCollective collective)
    {
        ArgumentNullException.ThrowIfNull(collective);
        return collective.DeviceOrdinal == context.DeviceOrdinal;
    }

    public void AverageGradients(IDeviceCollective collective)
    {
        DeviceArena gradients = BeginExchange(collective, Ops.Arena.Gradients);
        if (gradients.Length == 0) return;
        collective.AllReduceAverageInPlace(gradients.Address(0), gradients.Length, Storage);
    }

    public void PadForPartitions(long elements)
    {
        EnsureCurrent();
        Arena(Ops.Arena.Parameters).Reserve(context, allocations, elements);
        Arena(Ops.Arena.Gradients).Reserve(context, allocations, elements);
    }

    public void ReduceScatterGradients(IDeviceCollective collective, long partitionElements)
    {
        DeviceArena gradients = BeginExchange(collective, Ops.Arena.Gradients);
        RequirePartitions(gradients, collective, partitionElements);
        collective.ReduceScatterAverageInPlace(gradients.Address(0), partitionElements, Storage);
    }

    public void AllGatherParameters(IDeviceCollective collective, long partitionElements)
    {
        DeviceArena parameters = BeginExchange(collective, Ops.Arena.Parameters);
        RequirePartitions(parameters, collective, partitionElements);
        collective.AllGatherInPlace(parameters.Address(0), partitionElements, Storage);
        // The mirror (if any) is older now; a later View reads the device again.
    }

    private DeviceArena BeginExchange(IDeviceCollective collective, Arena arena)
    {
        BeginCollective(collective);
        return Arena(arena);
    }

    /// <summary>
    /// Before a collective on this backend's memory: checks the device, flushes host-view writes, and waits for this
    /// backend's kernels (the collective runs on a stream of its own).
    /// </summary>
    private void BeginCollective(IDeviceCollective collective)
    {
        if (!SharesDevice(collective))
            throw new ArgumentException($"the collective runs on device {collective.DeviceOrdinal}, this backend on {context.DeviceOrdinal}", nameof(collective));
        Begin(); // a host view written since the last operation goes to the device first
        context.Synchronize();
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
