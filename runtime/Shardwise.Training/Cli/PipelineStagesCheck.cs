using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>
/// Before any step: the config's pipeline.stages against the stage count the model was planned for at build time.
/// DeepSpeed cuts a PipelineModule into the stages the job asks for when the engine starts; Shardwise cut the model when
/// it was compiled (<c>[Model(Pipeline = p)]</c>, the plan report shows the cut), so a config asking for another count
/// cannot be honoured, and training on would change the data-parallel size and so the batch the config describes.
/// "auto" (DeepSpeed's default) takes the planned count.
/// </summary>
public static class PipelineStagesCheck
{
    /// <summary>Throws <see cref="CliException"/> when the config asks for a stage count other than <paramref name="plannedStages"/>.</summary>
    public static void Require(DeepSpeedConfig config, string model, int plannedStages)
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
}
