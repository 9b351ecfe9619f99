using System.Collections.Generic;
using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>
/// For the verbs that run one configuration (train, bench, plan): a search space of several candidates must go
/// through <c>tune</c> first; a list of one is that value. With autotuning enabled and nothing listed, a note says
/// what tune would search.
/// </summary>
public static class AutotuningCheck
{
    /// <summary>Throws <see cref="CliException"/> when a list holds several candidates; returns a note, or null.</summary>
    public static string? RequireOneConfiguration(DeepSpeedConfig config, string verb)
    {
        Refuse(config, "$.train_micro_batch_size_per_gpu", config.MicroBatchCandidates, verb);
        Refuse(config, "$.zero_optimization.stage", config.ZeroOptimization.StageCandidates, verb);
        return config.Autotuning is null ? null
            : $"autotuning is enabled: {verb} runs the config as written (micro-batch {config.MicroBatchPerGpu?.ToString() ?? "from the batch rule"}, " +
              $"ZeRO stage {config.ZeroOptimization.Stage}); the tune verb times the candidates and writes the best config";
    }

    private static void Refuse(DeepSpeedConfig config, string path, IReadOnlyList<int>? candidates, string verb)
    {
        if (candidates is not { Count: > 1 }) return;
        throw new CliException($"{config.SourceName}: {path} lists {candidates.Count} candidates [{string.Join(", ", candidates)}]: they are " +
                               $"autotuning's search space, which {verb} cannot run; run tune (it writes ds_config_optimal.json) or set one number");
    }
}
