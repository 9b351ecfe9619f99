using System;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>
/// ZeRO-2 on the device (<see cref="IDeviceSlotExchangeOps"/>): the bucket staging and this rank's partition — its
/// gradients and its working copy — as device buffers of the storage type, allocated once. Slot pieces move with
/// pieces.cu, partition ranges with add.cu's add_backward (copy or accumulate), and the collectives run in place on
/// the staging. The fused optimizer state then covers the partition buffers (see <see cref="FusedTarget"/>).
/// </summary>
public sealed partial class CudaOps : IDeviceSlotExchangeOps
{
    private DeviceArena? exchangeStaging, partitionGradients, partitionParameters;
    private CudaFunction? stagePiecesKernel, unstagePiecesKernel, copyOrAccumulateKernel; // looked up once

    public void CreateSlotExchange(StorageType storage, long stagingElements, ReadOnlySpan<float> masters)
    {
        if (!SupportsFusedOptimizer(storage))
            throw new NotSupportedException($"CudaOps keeps its optimizer state for {Storage} arenas, not {storage}");
        ArgumentOutOfRangeException.ThrowIfNegative(stagingElements);
        EnsureCurrent();
        DisposeFusedOptimizerState();
        exchangeStaging = DeviceArena.Allocate(context, stagingElements, Storage, holdsStatistics: false, allocations);
        partitionGradients = DeviceArena.Allocate(context, masters.Length, Storage, holdsStatistics: false, allocations);
        partitionParameters = DeviceArena.Allocate(context, masters.Length, Storage, holdsStatistics: false, allocations);
        stagePiecesKernel = Kernel("stage_pieces");
        unstagePiecesKernel = Kernel("unstage_pieces");
        copyOrAccumulateKernel = Kernel("add_backward");

        AllocateFusedState(start: 0, masters.Length, onPartition: true);
        // fp32: the partition's working copy is its master copy; 16-bit: the masters keep the values unrounded.
        if (fusedMasters is not null && masters.Length > 0) fusedMasters.Upload(masters);
        partitionParameters.Upload(masters, 0);
    }

    public void StagePieces(Slice gradient, long chunk, long stride, long at)
    {
        DeviceArena staging = RequireExchange();
        Begin();
        if (gradient.Length == 0) return;
        stagePiecesKernel!.Launch(kernels.ElementwiseBlocks(gradient.Length), CudaKernelSet.ElementwiseThreads, 0, null,
            Arena(gradient.Arena).Address(gradient.Offset), gradient.Length, chunk, staging.Address(at), stride);
    }

    public DeviceCollectiveTicket ReduceScatterStaging(IDeviceCollective collective, long segment, long at = 0)
    {
        if (WidensGradients)
        {
            AverageInFloat32(collective, StagingFor(collective, segment, at).Address(at), segment * collective.Size, segment);
            return DeviceCollectiveTicket.None;
        }
        (DeviceArena staging, CudaEvent after) = BeginStagingExchange(collective, segment, at);
        return collective.ReduceScatterAverageInPlace(staging.Address(at), segment, Storage, after);
    }

    public void AccumulateStaged(long stagingOffset, long ownedOffset, long length)
    {
        DeviceArena staging = RequireExchange();
        Begin();
        if (length == 0) return;
        copyOrAccumulateKernel!.Launch(kernels.ElementwiseBlocks(length), CudaKernelSet.ElementwiseThreads, 0, null,
            staging.Address(stagingOffset), partitionGradients!.Address(ownedOffset), length, 1);
    }

    public void StageOwnedParameters(long ownedOffset, long length, long stagingOffset)
    {
        DeviceArena staging = RequireExchange();
        Begin();
        if (length == 0) return;
        copyOrAccumulateKernel!.Launch(kernels.ElementwiseBlocks(length), CudaKernelSet.ElementwiseThreads, 0, null,
            partitionParameters!.Address(ownedOffset), staging.Address(stagingOffset), length, 0);
    }

    public DeviceCollectiveTicket AllGatherStaging(IDeviceCollective collective, long segment, long at = 0)
    {
        (DeviceArena staging, CudaEvent after) = BeginStagingExchange(collective, segment, at);
        return collective.AllGatherInPlace(staging.Address(at), segment, Storage, after);
    }

    public void UnstagePieces(Slice parameter, long chunk, long stride, long at)
    {
        DeviceArena staging = RequireExchange();
        Begin();
        if (parameter.Length == 0) return;
        unstagePiecesKernel!.Launch(kernels.ElementwiseBlocks(parameter.Length), CudaKernelSet.ElementwiseThreads, 0, null,
            staging.Address(at), stride, chunk, parameter.Length, Arena(parameter.Arena).Address(parameter.Offset));
    }

    public void ZeroPartitionGradients()
    {
        RequireExchange();
        Begin();
        partitionGradients!.Zero(0, partitionGradients.Length);
    }

    public long SlotExchangeBytes =>
        (exchangeStaging?.Bytes ?? 0) + (partitionGradients?.Bytes ?? 0) + (partitionParameters?.Bytes ?? 0);

    private DeviceArena RequireExchange() =>
        exchangeStaging ?? throw new InvalidOperationException("CudaOps has no ZeRO-2 exchange buffers: call CreateSlotExchange first");

    private (DeviceArena Staging, CudaEvent After) BeginStagingExchange(IDeviceCollective collective, long segment, long at)
        => (StagingFor(collective, segment, at), BeginCollective(collective));

    /// <summary>The staging, checked to hold one segment per rank from <paramref name="at"/>.</summary>
    private DeviceArena StagingFor(IDeviceCollective collective, long segment, long at)
    {
        DeviceArena staging = RequireExchange();
        if (segment < 0 || at < 0 || at + segment * collective.Size > staging.Length)
            throw new ArgumentOutOfRangeException(nameof(segment), $"{collective.Size} segments of {segment} elements from {at} exceed the staging's {staging.Length}");
        return staging;
    }

    /// <summary>Frees the staging and partition buffers (with the optimizer state, and from <see cref="Dispose"/>).</summary>
    private void DisposeSlotExchange()
    {
        foreach (DeviceArena? arena in new[] { exchangeStaging, partitionGradients, partitionParameters }) arena?.Dispose();
        exchangeStaging = partitionGradients = partitionParameters = null;
    }
}
