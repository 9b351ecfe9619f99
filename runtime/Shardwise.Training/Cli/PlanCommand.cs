using System;
using System.Globalization;
using System.IO;
using Shardwise.Cuda;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Offload;
using Shardwise.Training.Pipeline;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>plan</c>: the build-time plan (layout, activation plan), the memory it implies for the config, and the ZeRO
/// shard map for <c>--ranks</c> data-parallel ranks (a partitioned model's: per stage, within its data groups).
/// </summary>
public static class PlanCommand
{
    /// <param name="partition">
    /// The model's pipeline/tensor partition when it has one: with several ranks the job trains its stages, so the
    /// memory and the ZeRO traffic are predicted per stage, within data groups of ranks / (pipeline × tensor).
    /// </param>
    public static int Run<TModel>(RunSettings settings, int ranks, TextWriter log, ModelPartition? partition = null) where TModel : ILanguageModelDefinition
    {
        if (ranks < 1) throw new CliException("--ranks must be at least 1");
        var config = settings.Config;
        var storage = config.Storage;
        log.Write(TModel.PlanReport);
        log.WriteLine();
        int stage = config.ZeroOptimization.Stage;
        bool stages = partition is not null && ranks > 1 && partition.Pipeline * partition.Tensor > 1;
        if (stages) WriteStageMemory(partition!, config, ranks, TModel.SequenceLength, log);
        else WriteWholeModelMemory<TModel>(config, ranks, log);
        WriteModelNotes<TModel>(settings, config, log);
        if (stages) WriteStageTraffic(partition!, config, ranks / (partition!.Pipeline * partition.Tensor), log);
        else if (ranks > 1) WriteWholeModelTraffic<TModel>(config, ranks, log);
        return 0;
    }

    /// <summary>
    /// A job over a partitioned model: each stage's rank (tensor rank 0, data rank 0), with one activation window per
    /// micro-batch 1F1B keeps in flight on that stage, as <see cref="Pipeline.PipelineEngine.Memory"/> reports it. The
    /// stages keep fp32 working copies on either backend and step on the host (PipelineTrainCommand), so one line
    /// serves the CPU and a GPU.
    /// </summary>
    private static void WriteStageMemory(ModelPartition partition, DeepSpeedConfig config, int ranks, int sequenceLength, TextWriter log)
    {
        int modelParallel = partition.Pipeline * partition.Tensor;
        if (ranks % modelParallel != 0)
            throw new CliException($"--ranks {ranks}: the model is planned for Pipeline = {partition.Pipeline}, Tensor = {partition.Tensor}, so a job " +
                                   $"needs a multiple of {modelParallel} ranks");
        int data = ranks / modelParallel;
        var batch = config.Resolve(data);
        log.WriteLine($"memory per rank for micro-batch {batch.MicroBatchPerGpu}, {ranks} ranks = data {data} × pipeline {partition.Pipeline} × tensor " +
                      $"{partition.Tensor}, ZeRO stage {config.ZeroOptimization.Stage} within each data group, {batch.GradientAccumulationSteps} micro-batches per step (1F1B):");
        foreach (StagePlan plan in partition.Stages)
        {
            int windows = OneFOneBSchedule.BufferCount(partition.Pipeline, plan.Index, batch.GradientAccumulationSteps);
            var one = MemoryPlan.Predict(plan.Layout, plan.Activations, plan.GradientPool, plan.ParameterPool, config, data, 0, sizeof(float));
            var report = PipelineEngine.PerActivationWindow(one, windows, batch.MicroBatchPerGpu, plan.Activations);
            log.WriteLine($"  stage {plan.Index} ({windows} activation windows): {report.Describe()}  total {MemoryReport.Format(report.Total)}");
            if (MemoryPlan.QuantizedInputBytes(plan.Layout, config, data, sequenceLength, sizeof(float)) is > 0 and var quantized)
                log.WriteLine($"    plus the quantized Linear inputs' scratch (activation_quantization): {quantized:N0} bytes");
        }
        log.WriteLine("  (fp32 working copies on the CPU and on a GPU: the stages round to 16-bit on the host, where their optimizer steps)");
    }

    /// <summary>What each rank of a stage's data group sends per step, and how ZeRO cuts the stage's parameters over the group.</summary>
    private static void WriteStageTraffic(ModelPartition partition, DeepSpeedConfig config, int data, TextWriter log)
    {
        if (data == 1) return;
        var zero = config.ZeroOptimization;
        int microBatches = config.Resolve(data).GradientAccumulationSteps;
        log.WriteLine();
        log.WriteLine($"sent by each rank per step within its data group of {data}, {microBatches} micro-batch(es) (4-byte values through host memory):");
        foreach (StagePlan plan in partition.Stages)
        {
            var traffic = ZeroTraffic.For(plan.Layout, zero, data, microBatches, config.GradientCommunication);
            string pieces = zero.Stage >= 2 ? $"; rank 0 owns {SlotSharding.OwnedLengthOf(plan.Layout, data, 0):N0} of its {plan.Layout.TotalElements:N0} elements"
                : zero.Stage == 1 ? $"; rank 0 owns {new ShardMap(plan.Layout, data).OwnedLength(0):N0} of its {plan.Layout.TotalElements:N0} elements" : "";
            log.WriteLine($"  stage {plan.Index}: {traffic.Describe(zero.HpzPartitionSize)}{pieces}");
        }
    }

    private static void WriteWholeModelMemory<TModel>(DeepSpeedConfig config, int ranks, TextWriter log) where TModel : ILanguageModelDefinition
    {
        var batch = config.Resolve(ranks);
        var storage = config.Storage;
        int stage = config.ZeroOptimization.Stage;
        log.WriteLine($"memory of rank 0 for micro-batch {batch.MicroBatchPerGpu}, {storage}, {ranks} data-parallel rank(s), ZeRO stage {stage}:");
        // A GPU job takes NCCL where every rank has a GPU, which exchanges ZeRO 0/1 arenas in device memory.
        var device = MemoryPlan.Predict(TModel.ParameterLayout, TModel.ActivationPlan, TModel.GradientPool, TModel.ParameterPool, config, ranks, 0,
            storage.BytesPerElement(), exchangesInDeviceMemory: true);
        var cpu = MemoryPlan.Predict(TModel.ParameterLayout, TModel.ActivationPlan, TModel.GradientPool, TModel.ParameterPool, config, ranks, 0, sizeof(float));
        log.WriteLine($"  GPU, NCCL between ranks (16-bit where enabled): {device.Describe()}  total {MemoryReport.Format(device.Total)}");
        log.WriteLine($"    placed: {device.DescribePlacement()} (host: what the step and the exchanges hold in CPU memory)");
        if (device.Host > 0) log.WriteLine(HostMemoryNote<TModel>(config, ranks, storage.BytesPerElement()));
        if (MemoryPlan.WidenedGradientWireBytes(TModel.ParameterLayout, config, ranks) is > 0 and var wire)
            log.WriteLine($"    plus the fp32 gradient wire's device scratch (communication_data_type over {storage} gradients): {wire:N0} bytes");
        if (MemoryPlan.QuantizedInputBytes(TModel.ParameterLayout, config, ranks, TModel.SequenceLength, storage.BytesPerElement()) is > 0 and var quantized)
            log.WriteLine($"    plus the quantized Linear inputs' device scratch (activation_quantization): {quantized:N0} bytes");
        log.WriteLine($"  CPU backend (computes in fp32):                  {cpu.Describe()}  total {MemoryReport.Format(cpu.Total)}");
        if (MemoryPlan.QuantizedInputBytes(TModel.ParameterLayout, config, ranks, TModel.SequenceLength, sizeof(float)) is > 0 and var quantizedOnHost)
            log.WriteLine($"    plus the quantized Linear inputs' scratch (activation_quantization): {quantizedOnHost:N0} bytes");
        log.WriteLine(CudaWorkingMemoryNote(new CudaOpsOptions()));
        if (config.ZeroOptimization.OffloadOptimizer.Device == OffloadDevice.Nvme || config.ZeroOptimization.OffloadParam.Device == OffloadDevice.Nvme)
            log.WriteLine(NvmeSwapNote(config, TModel.ParameterLayout, ranks));
    }

    /// <summary>What the config turns on for the whole model: sparse attention, layer and token drop, compression.</summary>
    private static void WriteModelNotes<TModel>(RunSettings settings, DeepSpeedConfig config, TextWriter log) where TModel : ILanguageModelDefinition
    {
        if (SparseAttentionCheck.Describe(config, TModel.SequenceLength) is { } sparse)
        {
            // The layout the attention layers apply, as DeepSpeed users draw it: row = query block, column = key block.
            var layout = config.SparseAttention!.LayoutFor(heads: 1, TModel.SequenceLength);
            log.WriteLine();
            log.WriteLine(sparse);
            log.WriteLine($"layout{(config.SparseAttention.DifferentLayoutPerHead ? " of head 0" : "")} ('#' kept, '.' dropped; the attention is causal, so cells above the diagonal are never used):");
            log.Write(layout.Render(0));
        }
        if (LayerDrop.ProgressiveLayerDrop.For(config, TModel.DroppableLayers, typeof(TModel).Name, settings.Seed) is { } layerDrop)
        {
            log.WriteLine();
            log.WriteLine(layerDrop.Describe());
            log.WriteLine(layerDrop.DescribeExpectedWork(TModel.OperationCosts));
        }
        if (TokenDrop.RandomLtd.For(config, TModel.TokenDropLayers, typeof(TModel).Name, settings.Seed) is { } tokenDrop)
        {
            log.WriteLine();
            log.WriteLine(tokenDrop.Describe(TModel.SequenceLength));
            log.WriteLine(tokenDrop.DescribeExpectedWork(TModel.OperationCosts, TModel.SequenceLength));
        }
        if (config.CompressionTraining is { Enabled: true } compressionConfig)
        {
            // The trainer checked the plan already (CompressionTrainingCheck): it has no problems here.
            var compression = new ModelCompression.WeightCompression(compressionConfig, ModelCompression.CompressionPlan.For(TModel.ParameterLayout, compressionConfig));
            log.WriteLine();
            foreach (var line in compression.Describe()) log.WriteLine(line);
        }
    }

    private static void WriteWholeModelTraffic<TModel>(DeepSpeedConfig config, int ranks, TextWriter log) where TModel : ILanguageModelDefinition
    {
        var batch = config.Resolve(ranks);
        int stage = config.ZeroOptimization.Stage;
        log.WriteLine();
        var traffic = ZeroTraffic.For(TModel.ParameterLayout, config.ZeroOptimization, ranks, batch.GradientAccumulationSteps, config.GradientCommunication);
        log.WriteLine($"sent by each rank per step, {batch.GradientAccumulationSteps} micro-batch(es) (4-byte values on the host path; over NCCL the unquantized ones are 16-bit): "
                      + traffic.Describe(config.ZeroOptimization.HpzPartitionSize));
        if (!config.GradientCommunication.IsDefault)
            log.WriteLine($"gradient reduction: {config.GradientCommunication.Describe()}"
                          + (Engine.TrainingEngine.ReducesOnDevice(config) ? "" : " (through host memory on a GPU: NCCL's average of the storage type is not this)"));
        if (stage >= 2)
        {
            log.WriteLine($"ZeRO-{stage} shard map: every parameter is cut into {ranks} equal pieces (the last padded); rank r owns piece r of each:");
            for (int rank = 0; rank < ranks; rank++)
                log.WriteLine($"  rank {rank}: {SlotSharding.OwnedLengthOf(TModel.ParameterLayout, ranks, rank):N0} elements");
        }
        else
        {
            log.Write(new ShardMap(TModel.ParameterLayout, ranks).Describe());
        }
    }

    /// <summary>
    /// A GPU job's CPU memory on a node (what runs out first with offload): every rank's host bytes added up, as if all
    /// ranks shared one node, against this machine's memory as .NET sees it.
    /// </summary>
    internal static string HostMemoryNote<TModel>(DeepSpeedConfig config, int ranks, int workingBytes) where TModel : ILanguageModelDefinition
    {
        long all = 0;
        for (int rank = 0; rank < ranks; rank++)
            all += MemoryPlan.Predict(TModel.ParameterLayout, TModel.ActivationPlan, TModel.GradientPool, TModel.ParameterPool, config, ranks, rank,
                workingBytes, exchangesInDeviceMemory: true).Host;
        long machine = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return string.Create(CultureInfo.InvariantCulture,
                   $"    host memory of all {ranks} rank(s) on one node: {MemoryReport.Format(all)}; this machine has {MemoryReport.Format(machine)}")
               + (all > machine ? " (too little if they all run here)" : "");
    }

    /// <summary>
    /// offload_optimizer or offload_param on "nvme": the swap files each rank makes, all ranks' together, and whether
    /// nvme_path has room for them (if they share it), so that a full disk is known before the job is queued. (With two
    /// different nvme_paths, the optimizer's is checked for both.)
    /// </summary>
    internal static string NvmeSwapNote(DeepSpeedConfig config, ParameterLayout layout, int ranks)
    {
        var zero = config.ZeroOptimization;
        var storage = config.Storage;
        bool optimizer = zero.OffloadOptimizer.Device == OffloadDevice.Nvme, parameters = zero.OffloadParam.Device == OffloadDevice.Nvme;
        string path = optimizer ? zero.OffloadOptimizer.NvmePath! : zero.OffloadParam.NvmePath!;
        long rank0 = 0, all = 0;
        for (int rank = 0; rank < ranks; rank++)
        {
            long owned = zero.Stage >= 2 ? SlotSharding.OwnedLengthOf(layout, ranks, rank) : new ShardMap(layout, ranks).OwnedLength(rank);
            long bytes = (optimizer ? SwappedOptimizerState.FileBytesFor(owned) : 0) + (parameters ? SwappedParameterPieces.FileBytesFor(owned, storage) : 0);
            if (rank == 0) rank0 = bytes;
            all += bytes;
        }
        string what = optimizer && parameters ? "masters, moments and parameter pieces" : optimizer ? "offload_optimizer, masters and moments" : "offload_param, parameter pieces";
        string need = string.Create(CultureInfo.InvariantCulture,
            $"  NVMe swap ({what}): {MemoryReport.Format(rank0)} for rank 0, {MemoryReport.Format(all)} for all {ranks} rank(s), under {path}");
        long free = SwapFile.FreeBytes(path);
        return !Directory.Exists(path) ? need + $"\n  warning: {path} does not exist here; create it on the NVMe drive of every node before training"
            : free < 0 ? need + "\n  (the free space there is unknown)"
            : free < all ? need + $"\n  warning: {path} has {MemoryReport.Format(free)} free: too little if the ranks share it"
            : need + $"; {MemoryReport.Format(free)} free there";
    }

    /// <summary>
    /// What the GPU total leaves out: the CUDA backend's working memory, which grows to its largest call at run time
    /// (bench --device cuda prints it). Its bounds are known now: the cuBLAS workspace, and the flash attention's dSᵀ
    /// tiles, the largest scratch, capped by the backend's option.
    /// </summary>
    internal static string CudaWorkingMemoryNote(CudaOpsOptions options) =>
        $"  not in the GPU total: the CUDA backend's cuBLAS workspace ({MemoryReport.Format(CudaOps.CublasWorkspaceBytes)}) and scratch that " +
        $"grows to its largest call: the flash attention's dSᵀ tiles (batch·heads·seq² 16-bit values) up to " +
        $"{MemoryReport.Format(options.FlashStoredScoresMaxBytes)} (CudaOpsOptions.FlashStoredScoresMaxBytes; larger attentions recompute dQ), " +
        "a few MiB of partial sums; `bench --device cuda` prints them";
}
