using System.IO;
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
        var map = new ShardMap(TModel.ParameterLayout, ranks);
        long? owned = stage >= 1 ? map.PartitionElements : null;
        log.WriteLine($"memory per device for micro-batch {batch.MicroBatchPerGpu}, {storage}, {ranks} data-parallel rank(s), ZeRO stage {stage}:");
        var device = MemoryReport.For(TModel.ParameterLayout, TModel.ActivationPlan, batch.MicroBatchPerGpu, storage, storage.BytesPerElement(), owned);
        var cpu = MemoryReport.For(TModel.ParameterLayout, TModel.ActivationPlan, batch.MicroBatchPerGpu, storage, sizeof(float), owned);
        log.WriteLine($"  GPU (16-bit working copy where enabled): {device.Describe()}  total {MemoryReport.Format(device.Total)}");
        log.WriteLine($"  CPU backend (computes in fp32):          {cpu.Describe()}  total {MemoryReport.Format(cpu.Total)}");
        if (ranks > 1)
        {
            log.WriteLine();
            log.Write(map.Describe());
        }
        return 0;
    }
}
