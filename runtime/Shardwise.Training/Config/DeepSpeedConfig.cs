using System;
using System.Collections.Generic;
using System.IO;

namespace Shardwise.Training.Config;

/// <summary>
/// A validated ds_config.json with every default applied (see <see cref="ConfigDefaults"/>) and every
/// Hugging Face "auto" resolved. Batch sizes stay as written until <see cref="Resolve"/> applies the batch
/// rule, because that needs the data-parallel size, which only the launcher knows.
/// </summary>
public sealed record DeepSpeedConfig
{
    /// <summary>File path (or a label for in-memory JSON) used in every error message.</summary>
    public required string SourceName { get; init; }

    public required int? TrainBatchSize { get; init; }

    public required int? MicroBatchPerGpu { get; init; }

    public required int? GradientAccumulationSteps { get; init; }

    /// <summary>Null when the file has no optimizer section (the trainer then supplies one).</summary>
    public required OptimizerConfig? Optimizer { get; init; }

    /// <summary>Null when the file has no scheduler section: the learning rate stays constant.</summary>
    public required SchedulerConfig? Scheduler { get; init; }

    public required Fp16Config Fp16 { get; init; }

    public required Bf16Config Bf16 { get; init; }

    public required ZeroOptimizationConfig ZeroOptimization { get; init; }

    /// <summary>Global-norm clip threshold; 0 = off.</summary>
    public required double GradientClipping { get; init; }

    /// <summary>communication_data_type, prescale_gradients and gradient_predivide_factor.</summary>
    public GradientCommunicationConfig GradientCommunication { get; init; } = GradientCommunicationConfig.Default;

    public required ActivationCheckpointingConfig ActivationCheckpointing { get; init; }

    public required PipelineConfig Pipeline { get; init; }

    public required int StepsPerPrint { get; init; }

    public required bool WallClockBreakdown { get; init; }

    /// <summary>memory_breakdown: each report adds the process's measured memory (<c>Progress/MeasuredMemory</c>).</summary>
    public bool MemoryBreakdown { get; init; }

    /// <summary>dump_state: the trainer prints the effective configuration (<see cref="Describe"/>) as it starts, as DeepSpeed's engine does.</summary>
    public bool DumpState { get; init; }

    public required CheckpointConfig Checkpoint { get; init; }

    /// <summary>The "flops_profiler" section (disabled when absent).</summary>
    public FlopsProfilerConfig FlopsProfiler { get; init; } = FlopsProfilerConfig.Disabled;

    /// <summary>The "comms_logger" section (disabled when absent).</summary>
    public CommsLoggerConfig CommsLogger { get; init; } = CommsLoggerConfig.Disabled;

    /// <summary>The "tensorboard" section (disabled when absent).</summary>
    public MonitorConfig TensorBoard { get; init; } = MonitorConfig.Disabled("tensorboard");

    /// <summary>The "csv_monitor" section (disabled when absent).</summary>
    public MonitorConfig CsvMonitor { get; init; } = MonitorConfig.Disabled("csv_monitor");

    /// <summary>
    /// train_micro_batch_size_per_gpu as a list (autotuning's search space; <see cref="MicroBatchPerGpu"/> is its first
    /// entry); null when it is one number.
    /// </summary>
    public IReadOnlyList<int>? MicroBatchCandidates { get; init; }

    /// <summary>The autotuning section when enabled (the tune verb's settings); null otherwise.</summary>
    public AutotuningConfig? Autotuning { get; init; }

    /// <summary>tensor_parallel.autotp_size: the tensor degree the config expects of the build-time plan (1 when absent).</summary>
    public int TensorParallelSize { get; init; } = 1;

    /// <summary>The 16-bit (or fp32) storage the precision sections choose: fp16, else bf16, else fp32.</summary>
    public global::Shardwise.Precision.StorageType Storage => Fp16.Enabled ? global::Shardwise.Precision.StorageType.Float16
        : Bf16.Enabled ? global::Shardwise.Precision.StorageType.BFloat16 : global::Shardwise.Precision.StorageType.Float32;

    /// <summary>The "progressive_layer_drop" section (disabled when absent).</summary>
    public ProgressiveLayerDropConfig ProgressiveLayerDrop { get; init; } = ProgressiveLayerDropConfig.Disabled;

    /// <summary>
    /// data_efficiency.data_routing.random_ltd (random layerwise token dropping) when it and both sections above it are
    /// enabled; null otherwise.
    /// </summary>
    public RandomLtdConfig? RandomLtd { get; init; }

    /// <summary>The compression_training section (quantization-aware training, pruning); null when absent or every technique is off.</summary>
    public CompressionTrainingConfig? CompressionTraining { get; init; }

    /// <summary>The legacy curriculum_learning section (sequence-length curriculum); null when absent or off.</summary>
    public CurriculumLearningConfig? CurriculumLearning { get; init; }

    /// <summary>The sparse_attention section: the block-sparse pattern every attention layer applies; null = dense causal attention.</summary>
    public global::Shardwise.Sparsity.SparseAttentionPattern? SparseAttention { get; init; }

    /// <summary>Reads and validates a config file; throws <see cref="ConfigException"/> listing every problem.</summary>
    public static ConfigLoadResult Load(string path, ConfigOverrides? overrides = null)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (IOException e)
        {
            throw new ConfigException(path, [$"cannot read the file: {e.Message}"]);
        }

        return Parse(text, path, overrides);
    }

    /// <summary>Validates config JSON held in memory; <paramref name="sourceName"/> labels error messages.</summary>
    public static ConfigLoadResult Parse(string json, string sourceName = "<string>", ConfigOverrides? overrides = null) =>
        DeepSpeedConfigParser.Parse(json, sourceName, overrides ?? ConfigOverrides.None);

    /// <summary>Applies DeepSpeed's batch rule for <paramref name="dataParallelSize"/> ranks.</summary>
    public BatchSizes Resolve(int dataParallelSize)
    {
        if (ZeroOptimization is { Stage: 3, HpzPartitionSize: > 1 and var hpz } && dataParallelSize % hpz != 0)
            throw new ConfigException(SourceName, [$"$.zero_optimization.zero_hpz_partition_size is {hpz}, which does not divide the data-parallel size {dataParallelSize} (DeepSpeed asserts the same): set it to the ranks per node, a divisor of {dataParallelSize}"]);
        if (Elasticity is null) return BatchSizeRule.Resolve(TrainBatchSize, MicroBatchPerGpu, GradientAccumulationSteps, dataParallelSize, SourceName);
        try
        {
            var choice = Shardwise.Training.Elasticity.ElasticBatch.For(Elasticity, dataParallelSize);
            return new BatchSizes(choice.TrainBatchSize, choice.MicroBatchPerGpu, choice.TrainBatchSize / (choice.MicroBatchPerGpu * dataParallelSize), dataParallelSize);
        }
        catch (ArgumentException error)
        {
            throw new ConfigException(SourceName, [$"{ElasticityConfig.SectionPath}: {error.Message}"]);
        }
    }

    /// <summary>The "elasticity" section when enabled: it decides the batch for the data-parallel size (<see cref="Resolve"/>); null otherwise.</summary>
    public ElasticityConfig? Elasticity { get; init; }

    /// <summary>The effective configuration, one "$.path = value" per line, sorted (for --print-config).</summary>
    public string Describe(int? dataParallelSize = null) => ConfigDescriber.Describe(this, dataParallelSize);

    public override string ToString() => Describe();
}
