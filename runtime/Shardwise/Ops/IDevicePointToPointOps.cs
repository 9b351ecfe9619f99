namespace Shardwise.Ops;

/// <summary>
/// Implemented by a backend whose arenas live on a GPU: a pipeline stage sends a planned slice (its output activation,
/// its input's gradient) to a neighbour's device, and receives one, over an <see cref="IDeviceCollective"/> (NCCL) on
/// that GPU, without copying it through host memory. Each call is queued behind the kernels queued so far and returns
/// a ticket; the slice must not be touched until it is complete (<see cref="IDeviceCollective.Complete"/>).
/// </summary>
public interface IDevicePointToPointOps
{
    /// <summary>Whether <paramref name="link"/> works on this backend's device.</summary>
    bool SharesDevice(IDeviceCollective link);

    /// <summary>Sends the slice's elements, in the arena's storage type, to rank <paramref name="peer"/> of <paramref name="link"/>.</summary>
    DeviceCollectiveTicket SendSlice(IDeviceCollective link, Slice slice, int peer);

    /// <summary>Receives the slice's elements from rank <paramref name="peer"/>, which sends the same count and type.</summary>
    DeviceCollectiveTicket ReceiveSlice(IDeviceCollective link, Slice slice, int peer);
}
