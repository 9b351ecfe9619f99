using Shardwise.Cuda;
using Shardwise.Ops;
using Shardwise.Precision;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Engine;

// The bytes this engine holds, by category and placement (what MemoryPlan predicts).
public sealed partial class TrainingEngine
{
    /// <summary>True when the program runs on a GPU (CudaOps): then <see cref="MemoryReport.Device"/> is device memory.</summary>
    public bool RunsOnGpu => GradientStreamingOps<float>.Backend(_program.Ops) is CudaOps;

    /// <summary>
    /// "categories (device X, host Y)" on a GPU; the categories alone on the CPU backend, where every byte is host memory.
    /// </summary>
    public string DescribeMemory() => RunsOnGpu ? $"{Memory.Describe()} ({Memory.DescribePlacement()})" : Memory.Describe();

    public MemoryReport Memory => _deviceSlots is not null ? DeviceSlotMemory() : HostStepMemory(WorkingElementBytes(_program.Ops));

    /// <summary>Every path but ZeRO-2/3 on the device: the backend's arenas, and the engine's host arrays (see <see cref="MemoryReport.Host"/>).</summary>
    private MemoryReport HostStepMemory(int width)
    {
        long buffers = (_slots?.BufferBytes ?? _sharding.BufferBytes) + (_hostGradients?.LongLength ?? 0) * sizeof(float)
                       + (_parameterStreamer?.StagingBytes ?? 0) + (_swap?.BufferBytes ?? 0) + (_parameterSwap?.BufferBytes ?? 0) + (OneBit?.BufferBytes ?? 0)
                       + (_compression?.BufferBytes ?? 0) + (_parameterStreamer?.SecondaryBytes ?? 0);
        long pieces = (_accumulator?.LongLength ?? 0) + (_rounded?.LongLength ?? 0); // ZeRO-2/3 through the host
        long? parameters = _slots is null ? null
            : (_streamingOps!.StreamsParameters ? _streamingOps.ParameterArenaElements : _program.Layout.TotalElements) * width + (_rounded?.LongLength ?? 0) * sizeof(float);
        return MemoryReport.For(_program.Layout, _program.Plan, _program.Batch, Storage, width,
            ownedElements: OwnedElements,
            bufferBytes: buffers,
            nvmeBytes: (_swap?.FileBytes ?? 0) + (_parameterSwap?.FileBytes ?? 0),
            masterInHost: OffloadOptimizer || _slots is not null || _compression is not null,
            gradientBytes: _slots is null ? null : _streamingOps!.PoolElements * width + _accumulator!.LongLength * sizeof(float),
            parameterBytes: parameters,
            hostArrayBytes: buffers + pieces * sizeof(float),
            stateOnDevice: _fused is not null,
            moments: FusedMoments(Config.Optimizer?.Type, stepOnDevice: _fused is not null));
    }

    /// <summary>
    /// Bytes per element of the backend's parameter and gradient arenas: 2 for a CUDA backend storing fp16/bf16, else 4
    /// (the CPU backend keeps fp32 working copies even when it rounds them to 16-bit values).
    /// </summary>
    private static int WorkingElementBytes(ITensorOps<float> ops)
    {
        if (ops is GradientStreamingOps<float> streaming) ops = streaming.Inner;
        return ops is CudaOps { Storage: not StorageType.Float32 } ? 2 : sizeof(float);
    }
}
