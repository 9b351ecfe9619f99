using Shardwise.Precision;

namespace Shardwise.Ops;

/// <summary>
/// A data-parallel collective that sums a buffer in place in one GPU's memory (NCCL on device pointers), so that a
/// backend whose arenas live on that GPU reduces its gradients without a host round trip
/// (<see cref="IDeviceGradientOps"/>).
/// </summary>
public interface IDeviceAllReduce
{
    /// <summary>The CUDA device (ordinal) the collective's buffers must be on.</summary>
    int DeviceOrdinal { get; }

    /// <summary>The number of ranks that contribute to each sum.</summary>
    int Size { get; }

    /// <summary>
    /// Sums <paramref name="elements"/> values of <paramref name="storage"/> at device address
    /// <paramref name="address"/> over the ranks, in place, and returns when every rank's result is there. Every rank
    /// calls it with the same count and type; the caller has finished writing the buffer (its stream is synchronised).
    /// </summary>
    void SumInPlace(ulong address, long elements, StorageType storage);
}
