using System.IO;
using Shardwise.Cuda;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Engine;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>plan</c>: the build-time plan (layout, activation plan), the memory it implies for the config, and the ZeRO
/// shard map for <c>--ranks</c> data-parallel ranks.
/// </summary>
public static class PlanCommand
{
    public static int Run<TModel>(RunSettings settings, int ranks, TextWriter log) where TModel : ILanguageModelDefinition
    {
        if (ranks < 1) throw new CliException("--ranks must be at least 1");
        var config = settings.Config;
        var batch = config.Resolve(ranks);
        var storage = config.Fp16.Enabled ? StorageType.Float16 : config.Bf16.Enabled ? StorageType.BFloat16 : StorageType.Float32;
        log.Write(TModel.PlanReport);
        log.WriteLine();
        int stage = config.ZeroOptimization.Stage;
        log.WriteLine($"memory of rank 0 for micro-batch {batch.MicroBatchPerGpu}, {storage}, {ranks} data-parallel rank(s), ZeRO stage {stage}:");
        // A GPU job takes NCCL where every rank has a GPU, which exchanges ZeRO 0/1 arenas in device memory.
        var device = MemoryPlan.Predict(TModel.ParameterLayout, TModel.ActivationPlan, TModel.GradientPool, TModel.ParameterPool, config, ranks, 0,
            storage.BytesPerElement(), exchangesInDeviceMemory: true);
        var cpu = MemoryPlan.Predict(TModel.ParameterLayout, TModel.ActivationPlan, TModel.GradientPool, TModel.ParameterPool, config, ranks, 0, sizeof(float));
        log.WriteLine($"  GPU, NCCL between ranks (16-bit where enabled): {device.Describe()}  total {MemoryReport.Format(device.Total)}");
        log.WriteLine($"  CPU backend (computes in fp32):                  {cpu.Describe()}  total {MemoryReport.Format(cpu.Total)}");
        log.WriteLine(CudaWorkingMemoryNote(new CudaOpsOptions()));
        if (SparseAttentionCheck.Describe(config, TModel.SequenceLength) is { } sparse)
        {
            // The layout the attention layers apply, as DeepSpeed users draw it: row = query block, column = key block.
            var layout = config.SparseAttention!.LayoutFor(heads: 1, TModel.SequenceLength);
            log.WriteLine();
            log.WriteLine(sparse);
            log.WriteLine($"layout{(config.SparseAttention.DifferentLayoutPerHead ? " of head 0" : "")} ('#' kept, '.' dropped; the attention is causal, so cells above the diagonal are never used):");
            log.Write(layout.Render(0));
        }
        if (ranks > 1)
        {
            log.WriteLine();
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
        return 0;
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
