using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>
/// The config's pipeline section against what the model was planned with at build time. DeepSpeed cuts a PipelineModule
/// into the stages the job asks for, and checkpoints its layers, when the engine starts; Shardwise did both when the
/// model was compiled (<c>[Model(Pipeline = p)]</c>, <c>[Checkpoint]</c>; the plan report shows them).
/// </summary>
public static class PipelineSectionCheck
{
    /// <summary>
    /// Before any step: throws <see cref="CliException"/> when pipeline.stages asks for a count other than
    /// <paramref name="plannedStages"/>. It cannot be honoured, and training on would change the data-parallel size and
    /// so the batch the config describes. "auto" (DeepSpeed's default) takes the planned count.
    /// </summary>
    public static void RequireStages(DeepSpeedConfig config, string model, int plannedStages)
    {
        if (config.Pipeline.Stages is not { } asked || asked == plannedStages) return;
        string planned = plannedStages == 1
            ? $"{model} is planned without pipeline parallelism"
            : $"{model} is planned for [Model(Pipeline = {plannedStages})]";
        throw new CliException(
            $"{config.SourceName}: $.pipeline.stages is {asked}, but {planned}: Shardwise cuts the model into stages when it is " +
            $"compiled, so set [Model(Pipeline = {asked})] (the build's SW0010/SW0011 diagnostics say when a cut cannot be made), " +
            "or set the key to \"auto\" or remove it");
    }

    /// <summary>
    /// The section's other build-time keys, as warnings: activation_checkpoint_interval (DeepSpeed checkpoints every N
    /// layers of a PipelineModule) on a model with no [Checkpoint] layer, and a partition method other than the default,
    /// which cannot re-cut the compiled stages. Empty when they agree.
    /// </summary>
    public static System.Collections.Generic.IReadOnlyList<string> Warnings(PipelineConfig pipeline, string modelName, string planReport)
    {
        var warnings = new System.Collections.Generic.List<string>();
        if (pipeline.ActivationCheckpointInterval > 0 && !planReport.Contains(ActivationCheckpointingCheck.ReportMarker, System.StringComparison.Ordinal))
            warnings.Add($"$.pipeline.activation_checkpoint_interval: asks for a checkpoint every {pipeline.ActivationCheckpointInterval} layer(s), but {modelName} has no " +
                "[Checkpoint] layer, so nothing is recomputed; checkpointing is decided when the model is built: put [Checkpoint] on the layers to recompute");
        if (pipeline.Partition != ConfigDefaults.PipelinePartition)
            warnings.Add($"$.pipeline.partition: \"{pipeline.Partition}\" is not applied: {modelName}'s stages were cut when it was compiled (by FLOPs, the plan " +
                "report shows the cut); pin another cut with [Model(StageStarts = new[] { ... })]");
        return warnings;
    }
}
