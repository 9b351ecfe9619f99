namespace Shardwise.Ops;

/// <summary>
/// Implemented by a backend whose arenas live on a GPU: model-parallel exchanges of one planned slice over an
/// <see cref="IDeviceCollective"/> (NCCL) on that GPU, without copying it through host memory — a pipeline stage's
/// boundary (its output activation, its input's gradient) sent to or received from a neighbour, and a tensor-parallel
/// group's all-reduce of partial sums (Megatron's f and g) or maxima. Each call is queued behind the kernels queued so
/// far and returns a ticket; the slice must not be touched until it is complete (<see cref="IDeviceCollective.Complete"/>).
/// </summary>
public interface IDeviceSliceOps
{
    /// <summary>Whether <paramref name="link"/> works on this backend's device.</summary>
    bool SharesDevice(IDeviceCollective link);

    /// <summary>Sends the slice's elements, in the arena's storage type, to rank <paramref name="peer"/> of <paramref name="link"/>.</summary>
    DeviceCollectiveTicket SendSlice(IDeviceCollective link, Slice slice, int peer);

    /// <summary>Receives the slice's elements from rank <paramref name="peer"/>, which sends the same count and type.</summary>
    DeviceCollectiveTicket ReceiveSlice(IDeviceCollective link, Slice slice, int peer);

    /// <summary>The slice becomes its <paramref name="reduction"/> over the ranks of <paramref name="link"/>, in place.</summary>
    DeviceCollectiveTicket AllReduceSlice(IDeviceCollective link, Slice slice, DeviceReduction reduction);

    /// <summary>
    /// The slice holds one equal part per rank of <paramref name="link"/>, rank r's at r · length / ranks; each rank
    /// sends its own and receives the others', in place (a tensor group putting a checkpointed input back together).
    /// </summary>
    DeviceCollectiveTicket AllGatherSlice(IDeviceCollective link, Slice slice);
}
