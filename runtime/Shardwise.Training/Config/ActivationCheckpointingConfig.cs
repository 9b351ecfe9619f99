namespace Shardwise.Training.Config;

/// <summary>The "activation_checkpointing" section; every flag defaults to false.</summary>
public sealed record ActivationCheckpointingConfig
{
    public required bool PartitionActivations { get; init; }

    public required bool CpuCheckpointing { get; init; }

    public required bool ContiguousMemoryOptimization { get; init; }

    /// <summary>Number of checkpoints for contiguous memory; null = not set (DeepSpeed: None).</summary>
    public required int? NumberCheckpoints { get; init; }

    public required bool SynchronizeCheckpointBoundary { get; init; }

    public required bool Profile { get; init; }

    internal static ActivationCheckpointingConfig Read(JsonSection parent)
    {
        var section = parent.Section("activation_checkpointing");
        var config = new ActivationCheckpointingConfig
        {
            PartitionActivations = section.Bool("partition_activations") ?? ConfigDefaults.ActivationCheckpointingFlag,
            CpuCheckpointing = section.Bool("cpu_checkpointing") ?? ConfigDefaults.ActivationCheckpointingFlag,
            ContiguousMemoryOptimization = section.Bool("contiguous_memory_optimization") ?? ConfigDefaults.ActivationCheckpointingFlag,
            NumberCheckpoints = section.Int32("number_checkpoints", AutoRule.NotAllowed, min: 1),
            SynchronizeCheckpointBoundary = section.Bool("synchronize_checkpoint_boundary") ?? ConfigDefaults.ActivationCheckpointingFlag,
            Profile = section.Bool("profile") ?? ConfigDefaults.ActivationCheckpointingFlag,
        };

        if (config.CpuCheckpointing && !config.PartitionActivations)
        {
            // DeepSpeed only moves *partitioned* activations to the CPU.
            section.Warning("cpu_checkpointing", "has no effect without partition_activations (DeepSpeed only offloads partitioned activations)");
        }

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
