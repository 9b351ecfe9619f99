using System;
using Shardwise.Precision;

namespace Shardwise.Ops;

/// <summary>
/// The device side of ZeRO-2 over a device collective (NCCL), implemented by a backend whose arenas live on a GPU: a
/// staging buffer for gradient and parameter buckets, and this rank's optimizer partition — its pieces of every slot,
/// in layout order — as a gradient buffer and a working-copy buffer of the storage type. The engine's
/// <c>DeviceSlotSharding</c> decides what goes where (the bucket plan of <c>SlotSharding</c>); these are its copies
/// and collectives, each queued in order on the backend's device. After <see cref="CreateSlotExchange"/>, the
/// backend's <see cref="IFusedOptimizerOps"/> works on the partition buffers: <see cref="IFusedOptimizerOps.MeasureGradients"/>
/// reads the partition's gradients and <see cref="IFusedOptimizerOps.AdamStep"/> writes its working copy.
/// </summary>
public interface IDeviceSlotExchangeOps : IDeviceGradientOps
{
    /// <summary>
    /// Allocates the staging (<paramref name="stagingElements"/>) and the partition's gradient and working-copy buffers
    /// (<paramref name="ownedElements"/> each, gradients zeroed), and makes the backend's fused optimizer state cover the
    /// partition: masters from <paramref name="masters"/> (unrounded), moments zero, the working copy the masters rounded.
    /// </summary>
    void CreateSlotExchange(StorageType storage, long stagingElements, ReadOnlySpan<float> masters);

    /// <summary>
    /// Copies a slot's gradient (its pool region) into the staging: piece r (elements [r·chunk, (r+1)·chunk) of the
    /// slot) to staging[r·<paramref name="stride"/> + <paramref name="at"/>].
    /// </summary>
    void StagePieces(Slice gradient, long chunk, long stride, long at);

    /// <summary>
    /// Queues the average of ranks × <paramref name="segment"/> staging elements from <paramref name="at"/> over the
    /// ranks, in place, behind every kernel queued so far: this rank's segment (at <paramref name="at"/> + rank ·
    /// segment) then holds the average of every rank's. It returns at once; the region must not be touched until the
    /// ticket is complete (<see cref="IDeviceCollective.Complete"/>).
    /// </summary>
    DeviceCollectiveTicket ReduceScatterStaging(IDeviceCollective collective, long segment, long at = 0);

    /// <summary>Partition gradients [<paramref name="ownedOffset"/>, + length) += staging[<paramref name="stagingOffset"/>, + length).</summary>
    void AccumulateStaged(long stagingOffset, long ownedOffset, long length);

    /// <summary>Copies the partition's working copy [<paramref name="ownedOffset"/>, + length) to staging[<paramref name="stagingOffset"/> ..].</summary>
    void StageOwnedParameters(long ownedOffset, long length, long stagingOffset);

    /// <summary>
    /// Queues, in place over ranks × <paramref name="segment"/> staging elements from <paramref name="at"/>, the
    /// all-gather that makes segment r rank r's, behind every kernel queued so far. It returns at once; the region must
    /// not be touched until the ticket is complete (<see cref="IDeviceCollective.Complete"/>).
    /// </summary>
    DeviceCollectiveTicket AllGatherStaging(IDeviceCollective collective, long segment, long at = 0);

    /// <summary>The inverse of <see cref="StagePieces"/>: piece r of the slot <paramref name="parameter"/> from staging[r·stride + at].</summary>
    void UnstagePieces(Slice parameter, long chunk, long stride, long at);

    /// <summary>Zeroes the partition's gradients (after an update, or a skipped one).</summary>
    void ZeroPartitionGradients();

    /// <summary>Bytes of the staging and partition buffers (for the memory report).</summary>
    long SlotExchangeBytes { get; }
}
