using System;
using Shardwise.Ops;
using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>
/// The optimizer step on the device (<see cref="IFusedOptimizerOps"/>, DeepSpeed's fused Adam, FusedLion and Adagrad):
/// the moments (and, for 16-bit storage, the fp32 masters) are device buffers counted in <see cref="DeviceAllocations"/>,
/// allocated by <see cref="CreateOptimizerState"/> except exp_avg_sq, which the first <see cref="AdamStep"/> or
/// <see cref="AdagradStep"/> allocates (Lion never does: its one state tensor is exp_avg). A step launches
/// overflow_check_unscale (fp16 only), global_norm_squared and sum_f32, reads back 8 bytes (the norm² and the overflow
/// flag), then launches adamw_step, lion_step or adagrad_step. No arena crosses the bus. The state covers one range of the arenas: this rank's ZeRO-1 partition, or all of it.
/// </summary>
public sealed partial class CudaOps : IFusedOptimizerOps
{
    private const int NormThreads = 512;
    private const int AdamVector = 4; // elements per adamw_step thread and step: SW_ADAMW_VECTOR

    private DeviceMemory? fusedMasters;     // 16-bit storage only; in fp32 the parameter arena is the master copy
    private DeviceMemory? fusedExpAvg, fusedExpAvgSq; // exp_avg_sq: null until Adam's or Adagrad's first step (Lion has none)
    private DeviceMemory? fusedMeasurement; // [0] Σg² (float), [1] overflow flag (int), then one partial sum per norm block
    private int fusedNormBlocks;
    private long fusedStart, fusedLength;   // the range of the parameter and gradient arenas the state covers
    private bool fusedOnPartition;          // ZeRO-2: the state covers the partition buffers instead (CudaOps.SlotExchange.cs)
    private CudaFunction? overflowKernel, normKernel, adamKernel, lionKernel, adagradKernel; // looked up once: a step builds no strings

    /// <summary>
    /// Only the arenas' own storage type (<see cref="Storage"/>): fp16/bf16 training on fp32 arenas keeps the engine's
    /// host step, which rounds the gradients and the working copy through <see cref="View"/>.
    /// </summary>
    public bool SupportsFusedOptimizer(StorageType storage) => storage == Storage;

    public void CreateOptimizerState(StorageType storage, long start, long length)
    {
        if (!SupportsFusedOptimizer(storage))
            throw new NotSupportedException($"CudaOps keeps its optimizer state for {Storage} arenas, not {storage}");
        EnsureCurrent();
        DisposeFusedOptimizerState();
        DeviceArena parameters = Arena(Ops.Arena.Parameters);
        if (start < 0 || length < 0 || start + length > parameters.Length)
            throw new ArgumentOutOfRangeException(nameof(length), $"CudaOps optimizer state: [{start}, {start + length}) is not within the parameter arena's {parameters.Length} elements");
        AllocateFusedState(start, length, onPartition: false);
        // 16-bit arenas: the masters are the fp32 values the parameters were initialised with. View returns the host
        // mirror unrounded while it is the newer copy (the engine has just written it), and the arena widened
        // otherwise; the next operation rounds the mirror into the arena.
        if (fusedMasters is not null && length > 0)
            fusedMasters.Upload<float>(parameters.View(nameof(Ops.Arena.Parameters)).Slice(checked((int)start), checked((int)length)));
    }

    /// <summary>
    /// The moments (zero), the measurement buffer, the fp32 masters for 16-bit storage (not yet filled) and the kernels,
    /// for <paramref name="length"/> elements of the arenas from <paramref name="start"/>, or of the ZeRO-2 partition
    /// buffers (<paramref name="onPartition"/>).
    /// </summary>
    private void AllocateFusedState(long start, long length, bool onPartition)
    {
        (fusedStart, fusedLength, fusedOnPartition) = (start, length, onPartition);
        long bytes = Math.Max(1, length) * sizeof(float);
        if (Storage != StorageType.Float32) fusedMasters = allocations.Allocate(context, bytes);
        Begin();
        fusedExpAvg = allocations.Allocate(context, bytes);
        fusedExpAvg.Zero();
        fusedNormBlocks = 2 * Math.Max(1, Device.MultiprocessorCount); // fixed, so the norm sums in the same order every step
        fusedMeasurement = allocations.Allocate(context, (2L + fusedNormBlocks) * sizeof(float));
        overflowKernel = kernels[$"overflow_check_unscale_{StorageSuffix}"];
        normKernel = kernels[$"global_norm_squared_{StorageSuffix}"];
        adamKernel = kernels[$"adamw_step_{StorageSuffix}"];
        lionKernel = kernels[$"lion_step_{StorageSuffix}"];
        adagradKernel = kernels[$"adagrad_step_{StorageSuffix}"];
    }

    /// <summary>exp_avg_sq, allocated zeroed when Adam or Adagrad first needs it (a Lion run never holds it).</summary>
    private DeviceMemory SecondMoment()
    {
        if (fusedExpAvgSq is null)
        {
            fusedExpAvgSq = allocations.Allocate(context, Math.Max(1, fusedLength) * sizeof(float));
            fusedExpAvgSq.Zero();
        }
        return fusedExpAvgSq;
    }

    /// <summary>
    /// Where the state's gradients and working copy live: the arenas from <see cref="fusedStart"/>, or the ZeRO-2
    /// partition buffers from 0.
    /// </summary>
    private (DeviceArena Gradients, DeviceArena Parameters, long Start) FusedTarget() => fusedOnPartition
        ? (partitionGradients!, partitionParameters!, 0)
        : (Arena(Ops.Arena.Gradients), Arena(Ops.Arena.Parameters), fusedStart);

    public GradientMeasurement MeasureGradients(bool checkOverflow)
    {
        DeviceMemory measurement = RequireFusedState();
        Begin();
        var (gradients, _, start) = FusedTarget();
        if (fusedLength == 0) return new GradientMeasurement(false, 0);
        ulong address = gradients.Address(start), total = measurement.Pointer, flag = total + sizeof(float);
        ulong partials = total + 2 * sizeof(float);
        measurement.Zero(sizeof(float), sizeof(int));
        if (checkOverflow)
        {
            // inv_scale = 1: the kernel only checks; unscaling is folded into adamw_step's gradient multiplier.
            overflowKernel!.Launch(kernels.ElementwiseBlocks(fusedLength),
                CudaKernelSet.ElementwiseThreads, 0, null, address, fusedLength, 1f, flag);
        }

        normKernel!.Launch(fusedNormBlocks, NormThreads, 0, null,
            address, fusedLength, partials, 0);
        KernelNamed("sum_f32").Launch(1, SumThreads, 0, null, partials, fusedNormBlocks, total, 1f);
        Span<int> readback = stackalloc int[2];
        measurement.Download(readback); // synchronous: waits for the three kernels
        return new GradientMeasurement(readback[1] != 0, BitConverter.Int32BitsToSingle(readback[0]));
    }

    /// <summary>
    /// What every step kernel takes first: the fp32 masters (the parameter arena itself in fp32), the state's gradients,
    /// and the working copy to write rounded (a null pointer in fp32: nothing to round); null when the state is empty.
    /// </summary>
    private (ulong Master, ulong Gradients, ulong Working)? FusedStepBuffers()
    {
        RequireFusedState();
        Begin();
        var (gradients, parameters, start) = FusedTarget();
        if (fusedLength == 0) return null;
        return (fusedMasters?.Pointer ?? parameters.Address(start), gradients.Address(start), fusedMasters is null ? 0UL : parameters.Address(start));
    }

    /// <summary>
    /// One thread per group of 4 elements (SW_ADAMW_VECTOR, SW_LION_VECTOR, SW_ADAGRAD_VECTOR: float4 master and state,
    /// 4-element gradient and working copy); the state buffers are allocations and a ZeRO partition starts at a multiple
    /// of 16 elements, so the vector path is the one taken.
    /// </summary>
    private int FusedStepBlocks => kernels.ElementwiseBlocks((fusedLength + AdamVector - 1) / AdamVector);

    public void AdamStep(in FusedAdamStep step)
    {
        if (FusedStepBuffers() is not (var master, var gradients, var working)) return;
        adamKernel!.Launch(FusedStepBlocks, CudaKernelSet.ElementwiseThreads, 0, null,
            master, gradients, fusedExpAvg!.Pointer, SecondMoment().Pointer, working, fusedLength,
            step.LearningRate, step.Beta1, step.OneMinusBeta1, step.Beta2, step.OneMinusBeta2, step.Eps,
            step.WeightDecay, step.AdamWMode ? 1 : 0, step.InverseBiasCorrection1, step.InverseBiasCorrection2,
            step.GradientMultiplier, KernelArgument.Null);
    }

    public void LionStep(in FusedLionStep step)
    {
        if (FusedStepBuffers() is not (var master, var gradients, var working)) return;
        lionKernel!.Launch(FusedStepBlocks, CudaKernelSet.ElementwiseThreads, 0, null,
            master, gradients, fusedExpAvg!.Pointer, working, fusedLength,
            step.LearningRate, step.Beta1, step.OneMinusBeta1, step.Beta2, step.OneMinusBeta2, step.WeightDecay,
            step.GradientMultiplier, KernelArgument.Null);
    }

    public void AdagradStep(in FusedAdagradStep step)
    {
        if (FusedStepBuffers() is not (var master, var gradients, var working)) return;
        adagradKernel!.Launch(FusedStepBlocks, CudaKernelSet.ElementwiseThreads, 0, null,
            master, gradients, SecondMoment().Pointer, working, fusedLength,
            step.LearningRate, step.Eps, step.WeightDecay, step.GradientMultiplier, KernelArgument.Null);
    }

    public void ReadMasterWeights(Span<float> destination)
    {
        RequireFusedState();
        EnsureCurrent();
        RequireFusedLength(destination.Length, fusedLength, "master weights");
        if (fusedMasters is not null) fusedMasters.Download(destination);
        else
        {
            var (_, parameters, start) = FusedTarget();
            parameters.Download(destination, start);
        }
    }

    public void WriteMasterWeights(ReadOnlySpan<float> source)
    {
        RequireFusedState();
        RequireFusedLength(source.Length, fusedLength, "master weights");
        EnsureCurrent();
        if (fusedMasters is not null && source.Length > 0) fusedMasters.Upload(source);
        // The working copy, rounded to the arena's type.
        if (fusedOnPartition) partitionParameters!.Upload(source, 0);
        else Load(source, new Slice(Ops.Arena.Parameters, fusedStart, source.Length));
    }

    public void ReadMoments(Span<float> expAvg, Span<float> expAvgSq)
    {
        RequireFusedState();
        EnsureCurrent();
        long elements = fusedLength;
        RequireFusedLength(expAvg.Length, elements, "exp_avg");
        RequireFusedLength(expAvgSq.Length, elements, "exp_avg_sq");
        if (elements == 0) return;
        fusedExpAvg!.Download(expAvg);
        if (fusedExpAvgSq is null) expAvgSq.Clear(); // Lion's, or Adam's/Adagrad's before the first step: zeros
        else fusedExpAvgSq.Download(expAvgSq);
    }

    public void WriteMoments(ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq)
    {
        RequireFusedState();
        EnsureCurrent();
        long elements = fusedLength;
        RequireFusedLength(expAvg.Length, elements, "exp_avg");
        RequireFusedLength(expAvgSq.Length, elements, "exp_avg_sq");
        if (elements == 0) return;
        fusedExpAvg!.Upload(expAvg);
        if (fusedExpAvgSq is null && !expAvgSq.ContainsAnyExcept(0f)) return; // Lion's zeros: nothing to hold
        SecondMoment().Upload(expAvgSq);
    }

    public void ReleaseOptimizerState()
    {
        EnsureCurrent();
        DisposeFusedOptimizerState();
    }

    /// <summary>Frees the optimizer buffers (also from <see cref="Dispose"/>).</summary>
    private void DisposeFusedOptimizerState()
    {
        foreach (DeviceMemory? memory in new[] { fusedMasters, fusedExpAvg, fusedExpAvgSq, fusedMeasurement }) memory?.Dispose();
        fusedMasters = fusedExpAvg = fusedExpAvgSq = fusedMeasurement = null;
        DisposeSlotExchange(); // ZeRO-2's partition buffers belong to its state
        fusedOnPartition = false;
    }

    private DeviceMemory RequireFusedState() =>
        fusedMeasurement ?? throw new InvalidOperationException("CudaOps has no optimizer state: call CreateOptimizerState first");

    private static void RequireFusedLength(long given, long expected, string what)
    {
        if (given != expected) throw new ArgumentException($"CudaOps {what}: {given} elements given, the optimizer state covers {expected}");
    }
}
