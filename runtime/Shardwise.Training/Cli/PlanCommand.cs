using System.IO;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Cli;

/// <summary><c>plan</c>: the build-time plan (layout, activation plan) and the memory it implies for the config.</summary>
public static class PlanCommand
{
    public static int Run<TModel>(RunSettings settings, TextWriter log) where TModel : ILanguageModelDefinition
    {
        var config = settings.Config;
        var batch = config.Resolve(dataParallelSize: 1);
        var storage = config.Fp16.Enabled ? StorageType.Float16 : config.Bf16.Enabled ? StorageType.BFloat16 : StorageType.Float32;
        log.Write(TModel.PlanReport);
        log.WriteLine();
        log.WriteLine($"memory per device for micro-batch {batch.MicroBatchPerGpu}, {storage}, data-parallel size 1 (no ZeRO):");
        var device = MemoryReport.For(TModel.ParameterLayout, TModel.ActivationPlan, batch.MicroBatchPerGpu, storage, storage.BytesPerElement());
        var cpu = MemoryReport.For(TModel.ParameterLayout, TModel.ActivationPlan, batch.MicroBatchPerGpu, storage, sizeof(float));
        log.WriteLine($"  GPU (16-bit working copy where enabled): {device.Describe()}  total {MemoryReport.Format(device.Total)}");
        log.WriteLine($"  CPU backend (computes in fp32):          {cpu.Describe()}  total {MemoryReport.Format(cpu.Total)}");
        return 0;
    }
}
