namespace Shardwise.Training.Config;

/// <summary>
/// The "activation_checkpointing" section; every flag defaults to false. In DeepSpeed this section only tunes the
/// checkpoints the model code asks for; in Shardwise the model asks at build time with <c>[Checkpoint]</c> on its
/// layers (the generator plans the recompute), so nothing here turns checkpointing on or off. Policy:
/// contiguous_memory_optimization and number_checkpoints are honoured by construction (the activation arena is one
/// preplanned region; there is one checkpoint per [Checkpoint] layer) and read silently, as is
/// synchronize_checkpoint_boundary (a device sync that cannot change results). profile is known but unsupported: a
/// warning, since it only logs. cpu_checkpointing is the model's <c>[Checkpoint(InputsOnHost = true)]</c> and
/// partition_activations its <c>[Checkpoint(PartitionInputs = true)]</c>: the trainer warns when the config asks for
/// one and the model does not have it.
/// When the section asks for checkpointing (<see cref="IsRequested"/>) and the model has no [Checkpoint] layer, the
/// trainer warns once (Cli/ActivationCheckpointingCheck).
/// </summary>
public sealed record ActivationCheckpointingConfig
{
    public required bool PartitionActivations { get; init; }

    public required bool CpuCheckpointing { get; init; }

    public required bool ContiguousMemoryOptimization { get; init; }

    /// <summary>Number of checkpoints for contiguous memory; null = not set (DeepSpeed: None).</summary>
    public required int? NumberCheckpoints { get; init; }

    public required bool SynchronizeCheckpointBoundary { get; init; }

    public required bool Profile { get; init; }

    /// <summary>Whether the section asks for activation checkpoints at all (any memory option set).</summary>
    public bool IsRequested => PartitionActivations || CpuCheckpointing || ContiguousMemoryOptimization || NumberCheckpoints is not null;

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
            // DeepSpeed only moves *partitioned* activations to the CPU. With partitioning asked for, the trainer checks
            // the model instead (Cli/ActivationCheckpointingCheck): host checkpoints are [Checkpoint(InputsOnHost = true)].
            section.Warning("cpu_checkpointing", "has no effect without partition_activations (DeepSpeed only offloads partitioned activations); "
                + "Shardwise keeps checkpointed inputs in host memory where the model says [Checkpoint(InputsOnHost = true)]");
        }
        if (config.Profile)
            section.Warning("profile", UnsupportedFeaturePolicy.Prefix + "activation checkpoint profiling (the plan report gives the recompute cost)");

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
