using System.IO;
using Shardwise.Cpu;
using Shardwise.Data;
using Shardwise.Plans;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Cli;

/// <summary><c>eval</c>: validation loss (and accuracy on the built-in task) of the latest checkpoint in --resume.</summary>
public static class EvalCommand
{
    public static int Run<TModel>(RunSettings settings, TextWriter log) where TModel : ILanguageModelDefinition
    {
        var checkpoint = settings.ResumeDirectory is { } dir ? TrainingCheckpoint.FindLatest(dir) : null;
        if (checkpoint is null) throw new CliException("eval needs --resume DIR with a committed checkpoint");
        log.WriteLine(settings.DeviceChoice.Description);
        var batch = settings.Config.Resolve(dataParallelSize: 1);
        var data = TrainingData.Load(settings.DataPath, settings.TokenizerKind, TModel.VocabularySize, settings.Seed, TrainingCheckpoint.LoadTokenizer(checkpoint),
            settings.Packing, TModel.SequenceLength);
        var program = TModel.Compile(TrainingEngine.CreateBackend(settings.Config, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool, settings.Device), batch.MicroBatchPerGpu);
        // The attention the weights were trained with, whatever this config says.
        var trained = TrainingCheckpoint.ReadSparseAttention(checkpoint);
        if (trained != settings.Config.SparseAttention)
        {
            program.Ops.AttentionSparsity = trained;
            log.WriteLine(trained is null ? "attention: dense, as the checkpoint trained" : $"attention: block-sparse ({trained.Describe()}), as the checkpoint trained");
        }

        var engine = TrainingEngine.Initialize(program, settings.Config);
        var sampler = data.Dataset.CreateSampler(DataSplit.Train, batch.MicroBatchPerGpu, program.SequenceLength, settings.Seed);
        TrainingCheckpoint.Load(checkpoint, engine, sampler);

        var result = new Evaluation(program, data, settings.EvalBatches, settings.Seed + 1).Run(program);
        log.WriteLine($"step {engine.GlobalStep}: validation loss {result.Loss:F4}" +
                      (result.Accuracy is { } accuracy ? $", answer-digit accuracy {accuracy:P1}" : ""));
        return 0;
    }
}
