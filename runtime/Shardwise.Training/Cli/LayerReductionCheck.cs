using System.Collections.Generic;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Cli;

/// <summary>
/// compression_training.layer_reduction against the student model and the command line, before any backend exists:
/// the layer map must fit the compiled model (<see cref="StudentInitialization"/>), and a new run needs the teacher
/// (--init-from); a resumed run already holds the student's weights, so it needs none.
/// </summary>
internal static class LayerReductionCheck
{
    public static void Require(RunSettings settings, ParameterLayout layout, string model)
    {
        if (settings.Config.CompressionTraining?.LayerReduction is not { Enabled: true } reduction) return;
        var errors = new List<string>(StudentInitialization.For(reduction, layout, model).Problems);
        if (settings.InitFrom is null && settings.ResumeDirectory is null)
            errors.Add($"{LayerReductionConfig.SectionPath}.enabled: layer reduction starts {model} from a teacher's layers: pass the teacher's weights with --init-from (a run or checkpoint directory, or a consolidated file)");
        if (errors.Count > 0) throw new ConfigException(settings.Config.SourceName, errors);
    }
}
