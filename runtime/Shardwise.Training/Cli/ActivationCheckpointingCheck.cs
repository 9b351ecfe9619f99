using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>
/// Activation checkpointing is a build-time decision in Shardwise: <c>[Checkpoint]</c> on a layer makes the generator
/// drop the layer's activations after forward and recompute them in backward. A DeepSpeed config that asks for
/// checkpoints cannot add them at run time, so when it does and the model has none, the trainer says where to put them.
/// </summary>
public static class ActivationCheckpointingCheck
{
    /// <summary>The plan report line the generator writes for a model with [Checkpoint] layers.</summary>
    public const string ReportMarker = "activation checkpointing: ";

    /// <summary>The plan report line for checkpointed inputs kept in host memory ([Checkpoint(InputsOnHost = true)]).</summary>
    public const string HostReportMarker = "checkpointed inputs in host memory: ";

    /// <summary>The plan report line for checkpointed inputs kept in parts over the tensor ranks ([Checkpoint(PartitionInputs = true)]).</summary>
    public const string PartitionReportMarker = "checkpointed inputs in parts over ";

    /// <summary>The warning to print, or null when the config and the model agree.</summary>
    public static string? Warning(ActivationCheckpointingConfig config, string modelName, string planReport)
    {
        if (!config.IsRequested) return null;
        if (!planReport.Contains(ReportMarker, System.StringComparison.Ordinal))
            return $"$.activation_checkpointing: asks for activation checkpoints, but {modelName} has no [Checkpoint] layer, so nothing is recomputed; "
                + "checkpointing is decided when the model is built: put [Checkpoint] on the layers to recompute (e.g. [Layer, Checkpoint] on the block array)";
        // DeepSpeed offloads checkpoints only when they are partitioned too (the config check says so otherwise).
        if (config.CpuCheckpointing && config.PartitionActivations && !planReport.Contains(HostReportMarker, System.StringComparison.Ordinal))
            return $"$.activation_checkpointing.cpu_checkpointing: asks for checkpoints in host memory, but {modelName}'s [Checkpoint] layers keep their inputs on the device; "
                + "this is decided when the model is built: write [Checkpoint(InputsOnHost = true)] on them";
        // Host memory already holds the inputs whole; otherwise partitioning is the model's [Checkpoint(PartitionInputs = true)].
        if (config.PartitionActivations && !config.CpuCheckpointing && !planReport.Contains(PartitionReportMarker, System.StringComparison.Ordinal))
            return $"$.activation_checkpointing.partition_activations: asks for checkpoints split over the tensor-parallel ranks, but {modelName}'s [Checkpoint] layers keep their inputs whole on every rank; "
                + "this is decided when the model is built: write [Checkpoint(PartitionInputs = true)] on them (in a model planned for Tensor above 1)";
        return null;
    }
}
