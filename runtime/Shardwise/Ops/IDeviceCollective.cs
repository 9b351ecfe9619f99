using Shardwise.Precision;

namespace Shardwise.Ops;

/// <summary>
/// Data-parallel collectives over one GPU's memory (NCCL on device pointers), so that a backend whose arenas live on
/// that GPU reduces its gradients and shares its parameters without a host round trip (<see cref="IDeviceGradientOps"/>).
/// Every call works in place on a buffer of the backend's storage type and returns when this rank's result is there;
/// every rank calls it with the same counts and type, after its own stream has finished writing the buffer.
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

    /// <summary>Averages <paramref name="elements"/> values at device address <paramref name="address"/> over the ranks.</summary>
    void AllReduceAverageInPlace(ulong address, long elements, StorageType storage);

    /// <summary>
    /// ZeRO's gradient exchange: the buffer at <paramref name="address"/> holds <see cref="Size"/> partitions of
    /// <paramref name="partitionElements"/> each; afterwards partition <see cref="Rank"/> holds its average over the ranks
    /// (the other partitions are left as they were).
    /// </summary>
    void ReduceScatterAverageInPlace(ulong address, long partitionElements, StorageType storage);

    /// <summary>
    /// ZeRO's parameter exchange: afterwards every partition of the buffer holds what its owner rank had in it (this
    /// rank's own partition is its input).
    /// </summary>
    void AllGatherInPlace(ulong address, long partitionElements, StorageType storage);
}
