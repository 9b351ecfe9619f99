using System;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Engine;

// compression_training: where the engine hands the working weights to WeightCompression, and what it refuses.
public sealed partial class TrainingEngine
{
    /// <summary>compression_training's run-time state; null when the config has none.</summary>
    public WeightCompression? Compression => _compression;

    /// <summary>Whether the config turns on a compression_training technique (then the host steps).</summary>
    internal static bool Compresses(DeepSpeedConfig config) => config.CompressionTraining is { Enabled: true };

    /// <summary>
    /// The compression a config asks for, planned against the program's layout. Compression rewrites the full working
    /// copy on the host after every update, so it runs where every rank holds the whole working copy and the host
    /// steps: ZeRO stages 0 to 2, optimizer state in memory (the fused device step is left for the host step), a whole
    /// model or a pipeline stage of whole tensors (<see cref="Pipeline.PipelineEngine"/> refuses tensor-parallel stages).
    /// </summary>
    private static WeightCompression? CompressionFor(CompiledLanguageModel<float> program, DeepSpeedConfig config)
    {
        if (!Compresses(config)) return null;
        var compression = config.CompressionTraining!;
        if (config.ZeroOptimization.Stage >= 3)
            throw new NotSupportedException($"compression_training rewrites every rank's whole working copy after each update, and zero_optimization.stage = {config.ZeroOptimization.Stage} partitions it: use stage 0, 1 or 2");
        if (SwapsOptimizerState(config))
            throw new NotSupportedException("compression_training keeps fp32 masters in host memory beside the compressed working copy: it does not combine with offload_optimizer to nvme");
        // A pipeline stage holds some of the modules; the trainer checked every pattern against the whole model.
        var plan = CompressionPlan.For(program.Layout, compression, everyPatternMatches: program is not CompiledStage<float>);
        if (plan.Problems.Count > 0)
            throw new ArgumentException("compression_training does not fit the model: " + string.Join("; ", plan.Problems));
        return new WeightCompression(compression, plan, config.Optimizer is null ? new Optim.AdamOptions() : Optim.AdamOptions.FromConfig(config.Optimizer));
    }

    /// <summary>
    /// topk: sums the mask scores' gradients over the ranks when each added only its own part of the gradients
    /// (<paramref name="partitioned"/>), and returns their Σ of squares, which the global norm counts as DeepSpeed's
    /// optimizer counts the scores among its parameters.
    /// </summary>
    private double ReduceMaskScoreGradients(long forwardUpdates, bool partitioned)
    {
        if (_compression?.Learned is not { } learned) return 0;
        if (partitioned)
            foreach (var buffer in learned.GradientBuffers(forwardUpdates)) _sharding.Communicator.AllReduceSum(buffer);
        return learned.SumOfSquares(forwardUpdates);
    }

    /// <summary>topk: the mask scores' update, unscaled and clipped as the weights' gradients were.</summary>
    private void StepMaskScores(long forwardUpdates, double scale, double sumOfSquares, (double Beta1, double Beta2)? betas)
    {
        if (_compression?.Learned is not { } learned) return;
        learned.Step(forwardUpdates, LastLearningRate, betas, (float)(1.0 / UnscaleAndClipDivisor(scale, sumOfSquares)));
    }
}
