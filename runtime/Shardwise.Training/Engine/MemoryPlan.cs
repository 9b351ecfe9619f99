using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Training.Optim;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;
using Shardwise.Training.Offload;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Engine;

/// <summary>
/// Predicts, before anything is allocated, the bytes per rank the engine will hold for a config and rank count, by
/// category, from the generated plans alone (layout, activation plan, gradient and parameter pools). The trainer's
/// <c>plan</c> verb prints it; a test checks it against what a real engine allocates.
/// </summary>
public static class MemoryPlan
{
    /// <param name="workingBytes">Element size of working copies: 4 on the CPU backend, 2 on a GPU in fp16/bf16.</param>
    /// <param name="exchangesInDeviceMemory">
    /// A GPU job over NCCL (the default where every rank has a GPU): at ZeRO 0 and 1 the arenas are averaged and
    /// gathered in place, so stage 1 holds no host communication buffers; at ZeRO 2 and 3 the buckets, the partition and
    /// its optimizer state live on the device (on one rank too).
    /// </param>
    public static MemoryReport Predict(ParameterLayout layout, ActivationPlan activations, GradientPool gradientPool, ParameterPool parameterPool,
        DeepSpeedConfig config, int ranks, int rank, int workingBytes, bool exchangesInDeviceMemory = false)
    {
        var zero = config.ZeroOptimization;
        var storage = config.Storage;
        // A wire type or scaling NCCL's average does not give is reduced through host memory (TrainingEngine.ReducesOnDevice).
        exchangesInDeviceMemory &= ranks == 1 || TrainingEngine.ReducesOnDevice(config);
        int micro = config.Resolve(ranks).MicroBatchPerGpu;
        bool offload = zero.OffloadOptimizer.IsEnabled;
        bool swapped = zero.OffloadOptimizer.Device == OffloadDevice.Nvme;
        // NVMe: masters and moments in the swap file; host memory holds its chunk buffers.
        long SwapBuffers(long owned) => swapped ? SwappedOptimizerState.BufferBytesFor(zero.OffloadOptimizer, zero.SubGroupSize, owned) : 0;
        long SwapFile(long owned) => swapped ? SwappedOptimizerState.FileBytesFor(owned) : 0;

        if (zero.Stage <= 1)
        {
            var map = new ShardMap(layout, ranks);
            long owned = zero.Stage == 1 ? map.OwnedLength(rank) : layout.TotalElements;
            bool hostExchange = zero.Stage == 1 && ranks > 1 && (!exchangesInDeviceMemory || offload);
            long buffers = hostExchange ? (map.PaddedElements + map.PartitionElements) * sizeof(float) : 0;
            if (offload) buffers += owned * sizeof(float); // host copy of the gradients
            // A 1-bit optimizer's compression errors and messages, and its own state beyond Adam's.
            buffers += config.Optimizer?.Type switch
            {
                OptimizerType.OneBitAdam => OneBitAdam.BufferBytesFor(SlotLengths(layout), ranks),
                OptimizerType.OneBitLamb => OneBitLamb.BufferBytesFor(SlotLengths(layout), ranks),
                OptimizerType.ZeroOneAdam => ZeroOneAdam.BufferBytesFor(SlotLengths(layout), ranks),
                _ => 0,
            };
            // compression_training: the masters apart from the compressed working copy, its scratch and its masks.
            bool compressing = TrainingEngine.Compresses(config);
            if (compressing) buffers += WeightCompression.BufferBytesFor(CompressionPlan.For(layout, config.CompressionTraining!), config.CompressionTraining!);
            // A GPU job steps in the backend unless the state is offloaded, the optimizer has no fused step (Lamb, 1-bit)
            // or compression rewrites the working copy on the host.
            bool stepOnDevice = exchangesInDeviceMemory && !offload && !compressing && TrainingEngine.HasFusedStep(config.Optimizer?.Type);
            // The host reduction's packed segments on a 16-bit wire (ZeroSharding's GradientReduction: stage 0's buckets,
            // stage 1's padded layout), allocated by the first reduction through host memory.
            if (!stepOnDevice)
                buffers += GradientReduction.BufferBytesFor(config.GradientCommunication, ranks, ZeroSharding.LargestReduction(map, zero.Stage, zero.ReduceBucketSize));
            return MemoryReport.For(layout, activations, micro, storage, workingBytes, owned, buffers + SwapBuffers(owned), masterInHost: offload || compressing,
                nvmeBytes: SwapFile(owned), hostArrayBytes: buffers + SwapBuffers(owned), stateOnDevice: stepOnDevice,
                moments: TrainingEngine.FusedMoments(config.Optimizer?.Type, stepOnDevice));
        }

        long pieces = SlotSharding.OwnedLengthOf(layout, ranks, rank);
        // ZeRO-3 holds its residency pool and the slots kept whole instead of the parameters, and a prefetch staging.
        long resident = parameterPool.PoolElements;
        foreach (int slot in TrainingEngine.PersistentSlots(layout, zero.Stage3ParamPersistenceThreshold)) resident += layout.Slots[slot].Length;
        long prefetch = zero.Stage == 3 ? TrainingEngine.PrefetchElements(zero, resident, layout.TotalElements) : 0;
        // offload_param: the partition stays on the host; compression: the host rewrites the gathered working copy.
        // ZeRO++ too: its quantized transfers and hpZ's node-group copy are built over the host collectives.
        if (exchangesInDeviceMemory && !offload && !zero.OffloadParam.IsEnabled && !TrainingEngine.Compresses(config) && !TrainingEngine.UsesZeroPlusPlus(zero))
        {
            // ZeRO-2/3 on the device (TrainingEngine.DeviceSlotMemory): the partition's gradients and working copy beside
            // the gradient pool and the parameters (all of them, or ZeRO-3's residency pool and the slots kept whole),
            // and one staging, all at the working element size.
            long staging = SlotSharding.StagingElementsOf(layout, ranks, zero.ReduceBucketSize, zero.AllgatherBucketSize, gathersDuringBackward: zero.Stage == 3,
                               DeviceSlotSharding.GradientRegions(ranks, zero.OverlapComm))
                           + prefetch;
            long held = zero.Stage == 3 ? resident : layout.TotalElements;
            return MemoryReport.For(layout, activations, micro, storage, workingBytes, pieces, staging * workingBytes,
                gradientBytes: (gradientPool.PoolElements + pieces) * workingBytes, parameterBytes: (held + pieces) * workingBytes, stateOnDevice: true,
                moments: TrainingEngine.FusedMoments(config.Optimizer?.Type, stepOnDevice: true));
        }
        long slotBuffers = SlotSharding.BufferBytesOf(layout, ranks, zero.ReduceBucketSize, zero.AllgatherBucketSize, gathersDuringBackward: zero.Stage == 3,
            TransferQuantization.From(zero, storage), communication: config.GradientCommunication);
        // hpZ: this rank's piece of its node group's copy, and the group gathers' buffers.
        if (zero.Stage == 3 && zero.HpzPartitionSize > 1) slotBuffers += SecondaryPartition.BufferBytesOf(layout, zero.HpzPartitionSize, rank, prefetch);
        // Through host memory: the reduced gradient pieces (the accumulator) and the rounded pieces are host arrays beside
        // the backend's gradient pool and parameter arena (ZeRO-3: its residency pool and the slots kept whole).
        // offload_param to NVMe (ZeRO-3): the rounded pieces are in their swap file, read through one piece-sized buffer.
        bool piecesSwapped = zero.Stage == 3 && zero.OffloadParam.Device == OffloadDevice.Nvme;
        long roundedPieces = piecesSwapped ? 0 : pieces;
        long pieceBuffer = piecesSwapped ? SwappedParameterPieces.BufferBytesFor(SlotSharding.LargestPiece(layout, ranks), pieces, storage) : 0;
        long gradients = gradientPool.PoolElements * workingBytes + pieces * sizeof(float);
        long parameters = (zero.Stage == 3 ? resident : layout.TotalElements) * workingBytes + roundedPieces * sizeof(float);
        long hostBuffers = slotBuffers + prefetch * sizeof(float) + SwapBuffers(pieces) + pieceBuffer;
        if (TrainingEngine.Compresses(config)) hostBuffers += WeightCompression.BufferBytesFor(CompressionPlan.For(layout, config.CompressionTraining!), config.CompressionTraining!);
        return MemoryReport.For(layout, activations, micro, storage, workingBytes, pieces, hostBuffers,
            masterInHost: true, gradientBytes: gradients, parameterBytes: parameters,
            nvmeBytes: SwapFile(pieces) + (piecesSwapped ? SwappedParameterPieces.FileBytesFor(pieces, storage) : 0),
            hostArrayBytes: hostBuffers + (pieces + roundedPieces) * sizeof(float));
    }

    /// <summary>
    /// activation_quantization's scratch on either backend: Q(x) of the widest covered Linear input, micro-batch ×
    /// sequence rows of its input width, in <paramref name="elementBytes"/> (the device's storage type; 4 on the CPU).
    /// 0 when activation quantization is off.
    /// </summary>
    public static long QuantizedInputBytes(ParameterLayout layout, DeepSpeedConfig config, int ranks, int sequenceLength, int elementBytes)
    {
        if (config.CompressionTraining?.ActivationQuantization is not { Enabled: true }) return 0;
        long widest = CompressionPlan.For(layout, config.CompressionTraining!, everyPatternMatches: false).Modules
            .Where(m => m.ActivationBits is not null).Select(m => (long)m.Columns).DefaultIfEmpty(0).Max();
        return (long)config.Resolve(ranks).MicroBatchPerGpu * sequenceLength * widest * elementBytes;
    }

    /// <summary>
    /// communication_data_type "fp32" over 16-bit gradients, on a GPU job whose ranks exchange in device memory (NCCL):
    /// the device scratch every exchange is widened into (CudaOps.GradientWire), sized by the largest one, which is also
    /// the first: stage 0 averages the gradient arena whole (a bucket of reduce_bucket_size with overlap_comm), stage 1
    /// reduce-scatters the padded layout, stages 2–3 reduce-scatter one bucket's segments. 0 when nothing is widened:
    /// one rank, fp32 gradients, another wire, or a path that reduces through host memory (offload, compression,
    /// ZeRO++, an optimizer without a device step).
    /// </summary>
    public static long WidenedGradientWireBytes(ParameterLayout layout, DeepSpeedConfig config, int ranks)
    {
        var zero = config.ZeroOptimization;
        if (ranks == 1 || config.Storage == StorageType.Float32 || config.GradientCommunication.DataType != StorageType.Float32) return 0;
        bool onDevice = TrainingEngine.ReducesOnDevice(config) && !zero.OffloadOptimizer.IsEnabled && !TrainingEngine.Compresses(config)
                        && TrainingEngine.HasFusedStep(config.Optimizer?.Type)
                        && (zero.Stage <= 1 || (!zero.OffloadParam.IsEnabled && !TrainingEngine.UsesZeroPlusPlus(zero)));
        if (!onDevice) return 0;
        long elements = zero.Stage switch
        {
            0 => zero.OverlapComm ? Math.Min(Math.Max(1, zero.ReduceBucketSize), layout.TotalElements) : layout.TotalElements,
            1 => new ShardMap(layout, ranks).PaddedElements,
            _ => SlotSharding.SegmentElementsOf(layout, ranks, zero.ReduceBucketSize, zero.AllgatherBucketSize) * ranks,
        };
        return elements * sizeof(float);
    }

    private static List<long> SlotLengths(ParameterLayout layout) => layout.Slots.Select(slot => slot.Length).ToList();
}
