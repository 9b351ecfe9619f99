using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Cuda;

// communication_data_type "fp32" over 16-bit gradients on the device (DeepSpeed's usual advice for bf16): each gradient
// exchange widens its range into an fp32 scratch (cast.cu), averages that over NCCL in fp32, waits, and narrows the
// result back, so the average rounds once to the storage type instead of in every step of NCCL's 16-bit ring.
public sealed partial class CudaOps
{
    private StorageType? gradientWire; // null: the storage type
    private DeviceScratch? wireScratch;

    public StorageType GradientWire
    {
        get => gradientWire ?? Storage;
        set => gradientWire = value == Storage ? null : value == StorageType.Float32
            ? value
            : throw new System.ArgumentException($"gradients stored as {Storage} travel as {Storage} or Float32, not {value}", nameof(value));
    }

    /// <summary>Device bytes of the fp32 gradient wire's scratch (0 until an exchange widens).</summary>
    public long GradientWireScratchBytes => wireScratch?.Bytes ?? 0;

    private bool WidensGradients => gradientWire == StorageType.Float32 && Storage != StorageType.Float32;

    /// <summary>
    /// Averages <paramref name="elements"/> 16-bit values at <paramref name="address"/> over the ranks in fp32: all of
    /// them (<paramref name="partitionElements"/> 0), or, as a reduce-scatter, partition <see cref="IDeviceCollective.Rank"/>
    /// of <paramref name="partitionElements"/>, the only part narrowed back (the others are left as they were).
    /// </summary>
    private void AverageInFloat32(IDeviceCollective collective, ulong address, long elements, long partitionElements)
    {
        Begin(); // a host view written since the last operation reaches the device before the widening reads it
        if (elements == 0) return;
        wireScratch ??= new DeviceScratch(context, allocations, "fp32 gradient wire");
        ulong wide = wireScratch.Ensure(elements * sizeof(float));
        KernelNamed($"cast_{StorageSuffix}_to_f32").Launch(kernels.ElementwiseBlocks(elements), CudaKernelSet.ElementwiseThreads, 0, null,
            address, wide, elements);
        CudaEvent after = BeginCollective(collective); // the collective waits for the widening
        collective.Complete(partitionElements == 0
            ? collective.AllReduceInPlace(wide, elements, StorageType.Float32, DeviceReduction.Average, after)
            : collective.ReduceScatterAverageInPlace(wide, partitionElements, StorageType.Float32, after));
        long from = partitionElements == 0 ? 0 : collective.Rank * partitionElements;
        long count = partitionElements == 0 ? elements : partitionElements;
        KernelNamed($"cast_f32_to_{StorageSuffix}").Launch(kernels.ElementwiseBlocks(count), CudaKernelSet.ElementwiseThreads, 0, null,
            wide + (ulong)(from * sizeof(float)), address + (ulong)(from * elementBytes), count);
    }
}
