using System.Collections.Generic;
using System.Linq;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Cli;

/// <summary>
/// compression_training against the model and the rest of the config, before any backend exists: every group's
/// patterns must find modules, quantize_groups must divide the weights, and the run must be one the engine compresses
/// (ZeRO 0–2 with the optimizer state in memory, whole tensors on each rank: pipeline stages, not tensor ranks; activation
/// quantization likewise needs ZeRO 0–2 and whole input rows). Problems come back as config errors naming their JSON
/// paths.
/// </summary>
internal static class CompressionTrainingCheck
{
    /// <param name="layout">The whole model's layout (a pipeline's stages each hold part of it).</param>
    public static void Require(DeepSpeedConfig config, ParameterLayout layout, string model)
    {
        if (config.CompressionTraining is not { } compression) return;
        bool rewritesWeights = compression.Enabled, quantizesInputs = compression.ActivationQuantization.Enabled;
        if (!rewritesWeights && !quantizesInputs) return;
        const string section = CompressionTrainingConfig.SectionPath;
        const string activations = ActivationQuantizationConfig.SectionPath;
        // One error per key, naming the technique that needs whole tensors first (the weight techniques, if any are on).
        var errors = new List<string>();
        if (config.ZeroOptimization.Stage >= 3)
            errors.Add(rewritesWeights
                ? $"$.zero_optimization.stage: {config.ZeroOptimization.Stage} partitions the working weights, which {section} rewrites whole after every update on every rank: use stage 0, 1 or 2"
                : $"$.zero_optimization.stage: {config.ZeroOptimization.Stage} partitions the weights by which {activations} finds its Linear layers: use stage 0, 1 or 2");
        if (rewritesWeights && config.ZeroOptimization.OffloadOptimizer.Device == OffloadDevice.Nvme)
            errors.Add($"$.zero_optimization.offload_optimizer.device: nvme keeps the masters on disk; {section} needs them in memory beside the compressed working copy (use cpu)");
        if (config.TensorParallelSize > 1)
            errors.Add(rewritesWeights
                ? $"$.tensor_parallel.autotp_size: {config.TensorParallelSize} splits tensors over ranks, and {section} is not supported with tensor parallelism yet: its quantization groups and masks span whole tensors"
                : $"$.tensor_parallel.autotp_size: {config.TensorParallelSize} splits a row-parallel Linear's input over ranks, and {activations} takes each token's range over the whole row");
        errors.AddRange(CompressionPlan.For(layout, compression).Problems.Select(p => p.ToString()));
        if (errors.Count > 0) throw new ConfigException(config.SourceName, errors);
    }
}
