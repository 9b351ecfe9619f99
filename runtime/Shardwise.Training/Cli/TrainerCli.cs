using System;
using System.IO;
using Shardwise.Data;
using Shardwise.Plans;
using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>
/// The trainer executable every language model gets: <c>return TrainerCli.Run&lt;TinyGpt&gt;(args);</c> is the
/// whole Program.cs. Verbs: train (default), eval, sample, plan, bench, tune, consolidate, compare-curves. Errors print one clear line and exit 2.
/// </summary>
public static class TrainerCli
{
    public const string Usage = """
        usage: MODEL [train] [--config ds_config.json] [--data FILE.txt|FILE.jsonl] [--output DIR] [--steps N]
                     [--resume DIR] [--seed N] [--tokenizer char|gpt2] [--eval-interval N] [--eval-batches N]
                     [--save-interval N] [--print-config] [--device cpu|cuda|auto] [--packing]
                     [--init-from DIR|FILE.safetensors|FILE.safetensors.index.json]
               (--init-from: a new run from trained weights: a run or checkpoint directory, or what consolidate writes)
               (--packing: prompt/completion JSONL packed into windows, not one example per row)
               values a config leaves "auto" come from: --micro-batch --gradient-accumulation-steps --lr
                     --adam-beta1 --adam-beta2 --adam-eps --weight-decay --max-grad-norm --fp16 true|false
                     --bf16 true|false --warmup-steps --total-steps --hidden-size
               MODEL eval   --resume DIR [--data FILE] [--eval-batches N] [--device cpu|cuda|auto]
               MODEL sample --resume DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed N]
                            [--device cpu|cuda|auto] [--compressed CONFIG]
               MODEL plan   [--config ds_config.json] [--ranks N]
               MODEL consolidate --resume DIR --output FILE.safetensors [--tag step-NNNNNN] [--dtype fp32|bf16|fp16] [--compressed CONFIG]
                            [--max-shard-size 5GB]   (several files and FILE's .index.json when larger)
               MODEL compare-curves --reference A/metrics.csv --candidate B/metrics.csv [--loss-tolerance T]
                            [--val-tolerance R]   (exit 1 when the loss curves differ by more)
               MODEL tune   [--config ds_config.json] [--output DIR] [--memory-limit-mib N] [--device cpu|cuda|auto]
                            (autotuning: times the ZeRO stages and micro-batch sizes the config lists, or the largest
                            that fit, and writes DIR/autotuning_results/ds_config_optimal.json)
               MODEL bench  [--config ds_config.json] [--steps N] [--warmup N] [--device cpu|cuda|auto]
                            [--peak-tflops T] [--json FILE] [--max-seconds S] [--profile]
        With no --data, training uses a built-in synthetic task (multi-digit addition) and reports answer accuracy.
        --device (or SHARDWISE_DEVICE) defaults to auto: the GPU when CUDA initialises, else the CPU.
        """;

    public static int Run<TModel>(string[] args, TextWriter? output = null) where TModel : ILanguageModelDefinition
    {
        var log = output ?? Console.Out;
        try
        {
            var arguments = CliArguments.Parse(args);
            if (arguments.Flag("help"))
            {
                log.WriteLine(Usage);
                return 0;
            }
            string model = typeof(TModel).Name;
            switch (arguments.Verb)
            {
                case "train":
                {
                    var settings = ReadSettings<TModel>(arguments, model, log);
                    arguments.RejectUnknown();
                    if (AutotuningCheck.RequireOneConfiguration(settings.Config, "train") is { } tuningNote) log.WriteLine("note: " + tuningNote);
                    if (typeof(IPartitionedModelDefinition).IsAssignableFrom(typeof(TModel))) return RunPipelined<TModel>(settings, log);
                    TensorParallelCheck.Require(settings.Config, model, plannedTensor: 1);
                    PipelineSectionCheck.RequireStages(settings.Config, model, plannedStages: 1);
                    return TrainCommand.Run<TModel>(settings, log);
                }
                case "eval":
                {
                    var settings = ReadSettings<TModel>(arguments, model, log);
                    arguments.RejectUnknown();
                    return EvalCommand.Run<TModel>(settings, log);
                }
                case "sample":
                    return SampleCommand.Run<TModel>(arguments, log);
                case "plan":
                {
                    var settings = ReadSettings<TModel>(arguments, model, log);
                    int ranks = (int)(arguments.Long("ranks") ?? 1);
                    arguments.RejectUnknown();
                    AutotuningCheck.RequireOneConfiguration(settings.Config, "plan");
                    return PlanCommand.Run<TModel>(settings, ranks, log, PartitionOf<TModel>());
                }
                case "compare-curves":
                    return CompareCurvesCommand.Run(arguments, log);
                case "consolidate":
                    return ConsolidateCommand.Run<TModel>(arguments, log);
                case "bench":
                {
                    var settings = ReadSettings<TModel>(arguments, model, log);
                    var bench = BenchOptions.Read(arguments);
                    arguments.RejectUnknown();
                    AutotuningCheck.RequireOneConfiguration(settings.Config, "bench");
                    return BenchCommand.Run<TModel>(settings, bench, log);
                }
                case "tune":
                {
                    var settings = ReadSettings<TModel>(arguments, model, log);
                    long? limit = arguments.Long("memory-limit-mib") is { } mib ? mib << 20 : null;
                    arguments.RejectUnknown();
                    return TuneCommand.Run<TModel>(settings, limit, log);
                }
                default:
                    throw new CliException($"unknown verb '{arguments.Verb}'\n{Usage}");
            }
        }
        catch (Exception error) when (error is CliException or ConfigException or DataFormatException or InvalidDataException or FileNotFoundException
                                          or Shardwise.Ops.BackendCapacityException or Offload.OffloadException)
        {
            Console.Error.WriteLine("error: " + error.Message);
            return 2;
        }
    }

    /// <summary>The model's pipeline/tensor partition, or null for a model planned for one rank.</summary>
    private static ModelPartition? PartitionOf<TModel>() =>
        typeof(IPartitionedModelDefinition).IsAssignableFrom(typeof(TModel))
            ? (ModelPartition)typeof(TrainerCli).GetMethod(nameof(PartitionOfPartitioned), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                .MakeGenericMethod(typeof(TModel)).Invoke(null, null)!
            : null;

    private static ModelPartition PartitionOfPartitioned<TModel>() where TModel : IPartitionedModelDefinition => TModel.Partition;

    /// <summary>
    /// <see cref="PipelineTrainCommand"/> needs TModel as an <see cref="IPartitionedModelDefinition"/>, which this
    /// method's constraint cannot state; the generic method is closed over the model type at run time instead.
    /// </summary>
    private static int RunPipelined<TModel>(RunSettings settings, TextWriter log)
    {
        var method = typeof(PipelineTrainCommand).GetMethod(nameof(PipelineTrainCommand.Run))!.MakeGenericMethod(typeof(TModel));
        try
        {
            return (int)method.Invoke(null, [settings, log, null])!;
        }
        catch (System.Reflection.TargetInvocationException error) when (error.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error.InnerException).Throw();
            throw;
        }
    }

    /// <summary>
    /// The shared options, plus the checks that need the model: a config asking for checkpoints it has not, a sparse
    /// attention pattern against its sequence length, and compression_training's groups against its modules.
    /// </summary>
    private static RunSettings ReadSettings<TModel>(CliArguments arguments, string model, TextWriter log) where TModel : ILanguageModelDefinition
    {
        var settings = RunSettings.Read(arguments, model, log);
        if (ActivationCheckpointingCheck.Warning(settings.Config.ActivationCheckpointing, model, TModel.PlanReport) is { } warning)
            log.WriteLine("config warning: " + warning);
        foreach (string pipelineWarning in PipelineSectionCheck.Warnings(settings.Config.Pipeline, model, TModel.PlanReport))
            log.WriteLine("config warning: " + pipelineWarning);
        // Before any backend exists: a pattern that does not fit the model's sequence stops here. The commands print the
        // line with their own start-up lines.
        SparseAttentionCheck.Describe(settings.Config, TModel.SequenceLength);
        LayerDrop.ProgressiveLayerDrop.For(settings.Config, TModel.DroppableLayers, model, settings.Seed);
        TokenDrop.RandomLtd.For(settings.Config, TModel.TokenDropLayers, model, settings.Seed);
        CompressionTrainingCheck.Require(settings.Config, TModel.ParameterLayout, model);
        LayerReductionCheck.Require(settings, TModel.ParameterLayout, model);
        return settings;
    }
}
