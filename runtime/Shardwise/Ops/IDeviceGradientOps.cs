namespace Shardwise.Ops;

/// <summary>
/// Implemented by a backend whose parameter and gradient arenas live on a GPU: a data-parallel step exchanges them
/// over the ranks with an <see cref="IDeviceCollective"/> on that GPU and runs the fused optimizer step there
/// (<see cref="IFusedOptimizerOps"/>), instead of moving every gradient and parameter through the host.
/// <list type="bullet">
/// <item>ZeRO 0: <see cref="AverageGradients"/>, then every rank steps the whole arena; with overlap_comm, buckets of
/// the arena by <see cref="AverageGradientRange"/> as backward finishes them;</item>
/// <item>ZeRO 1: <see cref="ReduceScatterGradients"/>, each rank steps its partition, <see cref="AllGatherParameters"/>.</item>
/// </list>
/// </summary>
public interface IDeviceGradientOps
{
    /// <summary>Whether <paramref name="collective"/> works on this backend's device.</summary>
    bool SharesDevice(IDeviceCollective collective);

    /// <summary>
    /// The element type the gradient averages below travel in (communication_data_type): the storage type (the
    /// default), or fp32 over 16-bit storage, where each exchange widens its range into fp32 scratch, averages that, and
    /// narrows the result back (the exchange then completes before the call returns).
    /// </summary>
    global::Shardwise.Precision.StorageType GradientWire { get; set; }

    /// <summary>
    /// gradients = the average over ranks of each rank's gradient arena, in place, in <see cref="GradientWire"/>'s
    /// type. Every rank calls it at the same step.
    /// </summary>
    void AverageGradients(IDeviceCollective collective);

    /// <summary>
    /// Queues the average over ranks of gradient arena elements [<paramref name="start"/>, + <paramref name="length"/>)
    /// behind every kernel queued so far and returns at once: backward may go on writing other gradients while it runs.
    /// The range must not be touched until the ticket is complete (<see cref="IDeviceCollective.Complete"/>).
    /// </summary>
    DeviceCollectiveTicket AverageGradientRange(IDeviceCollective collective, long start, long length);

    /// <summary>
    /// Makes the parameter and gradient arenas' device memory hold at least <paramref name="elements"/> elements (the
    /// ZeRO partitions padded to equal sizes, which NCCL's reduce-scatter and all-gather need), keeping their contents;
    /// the padding starts at zero and no operation but the exchanges below reads it. Their lengths do not change.
    /// Called once, before training: it may move the arenas.
    /// </summary>
    void PadForPartitions(long elements);

    /// <summary>
    /// ZeRO 1: partition <see cref="IDeviceCollective.Rank"/> of the gradient arena (elements [rank·P, rank·P + P),
    /// P = <paramref name="partitionElements"/>) becomes its average over the ranks; the rest is left as it was.
    /// </summary>
    void ReduceScatterGradients(IDeviceCollective collective, long partitionElements);

    /// <summary>ZeRO 1: every rank's partition of the parameter arena is copied to every rank, after each stepped its own.</summary>
    void AllGatherParameters(IDeviceCollective collective, long partitionElements);
}
