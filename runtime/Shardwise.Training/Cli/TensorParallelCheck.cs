using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>
/// Before any step: the config's tensor_parallel.autotp_size against the tensor degree the model was planned for at
/// build time. DeepSpeed's AutoTP splits the layers when the engine starts; Shardwise split them when the model was
/// compiled, so a config asking for another degree cannot be honoured, and training on would change the
/// data-parallel size and so the batch the config describes.
/// </summary>
public static class TensorParallelCheck
{
    /// <summary>Throws <see cref="CliException"/> when the config asks for a degree other than <paramref name="plannedTensor"/>.</summary>
    public static void Require(DeepSpeedConfig config, string model, int plannedTensor)
    {
        int asked = config.TensorParallelSize;
        if (asked == 1 || asked == plannedTensor) return;
        string planned = plannedTensor == 1
            ? $"{model} is planned without tensor parallelism"
            : $"{model} is planned for [Model(Tensor = {plannedTensor})]";
        throw new CliException(
            $"{config.SourceName}: $.tensor_parallel.autotp_size is {asked}, but {planned}: Shardwise splits layers when the model " +
            $"is compiled, so set [Model(Tensor = {asked})] with [Shard(ShardKind.Column)] / [Shard(ShardKind.Row)] on its Linear " +
            "layers (Megatron's pairs; the build's SW0012/SW0017 diagnostics say what does not divide or pair), or remove the key");
    }
}
