using Shardwise.Cuda;
using Shardwise.Precision;

namespace Shardwise.Ops;

/// <summary>
/// Data-parallel collectives over one GPU's memory (NCCL on device pointers), so that a backend whose arenas live on
/// that GPU reduces its gradients and shares its parameters without a host round trip (<see cref="IDeviceGradientOps"/>).
/// <para>
/// Every call is queued on the collective's own stream and returns at once with a <see cref="DeviceCollectiveTicket"/>:
/// the device runs it after the work that <c>after</c> marks (an event the caller recorded on its stream once the
/// buffer was written), while the caller's stream goes on. <see cref="Complete"/> waits for it; until then nothing may
/// touch its buffer. That is how gradient buckets are reduced during backward (DeepSpeed's overlap_comm). Every rank
/// queues the same collectives, with the same counts and type, in the same order.
/// </para>
/// Reductions average (NCCL's ncclAvg, which scales each rank's value by 1/ranks as it enters the sum): in fp16 a sum
/// of the ranks' loss-scaled gradients could overflow where their average does not, and the host path averages too.
/// </summary>
public interface IDeviceCollective
{
    /// <summary>The CUDA device (ordinal) the collective's buffers must be on.</summary>
    int DeviceOrdinal { get; }

    /// <summary>This rank's index in the group: which partition it receives in <see cref="ReduceScatterAverageInPlace"/>.</summary>
    int Rank { get; }

    /// <summary>The number of ranks that contribute to each sum.</summary>
    int Size { get; }

    /// <summary>
    /// Reduces <paramref name="elements"/> values at device address <paramref name="address"/> over the ranks, in place:
    /// their average (data-parallel gradients), sum (tensor-parallel partial results) or maximum.
    /// </summary>
    DeviceCollectiveTicket AllReduceInPlace(ulong address, long elements, StorageType storage, DeviceReduction reduction, CudaEvent after);

    /// <summary>
    /// ZeRO's gradient exchange: the buffer at <paramref name="address"/> holds <see cref="Size"/> partitions of
    /// <paramref name="partitionElements"/> each; afterwards partition <see cref="Rank"/> holds its average over the ranks
    /// (the other partitions are left as they were).
    /// </summary>
    DeviceCollectiveTicket ReduceScatterAverageInPlace(ulong address, long partitionElements, StorageType storage, CudaEvent after);

    /// <summary>
    /// ZeRO's parameter exchange: afterwards every partition of the buffer holds what its owner rank had in it (this
    /// rank's own partition is its input).
    /// </summary>
    DeviceCollectiveTicket AllGatherInPlace(ulong address, long partitionElements, StorageType storage, CudaEvent after);

    /// <summary>Sends <paramref name="elements"/> values at <paramref name="address"/> to rank <paramref name="peer"/> (messages between two ranks match in order).</summary>
    DeviceCollectiveTicket Send(ulong address, long elements, StorageType storage, int peer, CudaEvent after);

    /// <summary>Receives <paramref name="elements"/> values from rank <paramref name="peer"/> into <paramref name="address"/>.</summary>
    DeviceCollectiveTicket Receive(ulong address, long elements, StorageType storage, int peer, CudaEvent after);

    /// <summary>
    /// Returns when the collective <paramref name="ticket"/> names, and every one queued before it, is done; the host
    /// waits with the communicator's deadline, and a peer that never comes fails the call (it does not hang).
    /// </summary>
    void Complete(DeviceCollectiveTicket ticket);
}

/// <summary>A queued device collective, in its stream's order; <see cref="None"/> (nothing was queued) is complete already.</summary>
public readonly record struct DeviceCollectiveTicket(long Sequence)
{
    public static DeviceCollectiveTicket None => default;
}

/// <summary>How <see cref="IDeviceCollective.AllReduceInPlace"/> combines the ranks' values.</summary>
public enum DeviceReduction
{
    Average,
    Sum,
    Max,
}
