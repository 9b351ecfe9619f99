using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>The "pipeline" section (deepspeed/runtime/config.py:460).</summary>
public sealed record PipelineConfig
{
    /// <summary>Pipeline stage count; null = "auto" (taken from the model's PipelineModule).</summary>
    public required int? Stages { get; init; }

    /// <summary>"best" (DeepSpeed's default), "uniform", "parameters" or "type:&lt;regex&gt;".</summary>
    public required string Partition { get; init; }

    public required bool SeedLayers { get; init; }

    public required int ActivationCheckpointInterval { get; init; }

    /// <summary>Each tensor rank sends its part of a boundary activation, all-gathered by the receivers (PipelineEngine).</summary>
    public required bool PipePartitioned { get; init; }

    /// <summary>Likewise for the gradient sent back to the previous stage.</summary>
    public required bool GradPartitioned { get; init; }

    internal static PipelineConfig Read(JsonSection parent)
    {
        var section = parent.Section("pipeline");
        var config = new PipelineConfig
        {
            Stages = ReadStages(section),
            Partition = section.String("partition") ?? ConfigDefaults.PipelinePartition,
            SeedLayers = section.Bool("seed_layers") ?? ConfigDefaults.PipelineSeedLayers,
            ActivationCheckpointInterval = section.Int32("activation_checkpoint_interval", AutoRule.NotAllowed, min: 0) ?? ConfigDefaults.PipelineActivationCheckpointInterval,
            PipePartitioned = section.Bool("pipe_partitioned") ?? ConfigDefaults.PipelinePipePartitioned,
            GradPartitioned = section.Bool("grad_partitioned") ?? ConfigDefaults.PipelineGradPartitioned,
        };

        if (!IsKnownPartition(config.Partition))
        {
            section.Error("partition", $"unknown partition method \"{config.Partition}\"; use best, uniform, parameters or type:<regex>");
        }

        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }

    private static int? ReadStages(JsonSection section)
    {
        // "auto" is DeepSpeed's own default here, not a Hugging Face placeholder.
        if (section.TryTake("stages", out var value) && value.ValueKind == JsonValueKind.String && value.GetString() == "auto")
        {
            return null;
        }

        return section.Int32("stages", AutoRule.TreatAsAbsent, min: 1);
    }

    private static bool IsKnownPartition(string partition) =>
        partition is "best" or "uniform" or "parameters" || partition.StartsWith("type:", System.StringComparison.Ordinal);
}
