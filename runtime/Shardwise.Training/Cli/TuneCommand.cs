using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Shardwise.Cuda;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Training.Cli;

/// <summary>One timed candidate: its steps' mean time and the metric's value, or why it could not run.</summary>
public sealed record AutotuningExperiment(AutotuningCandidate Candidate, double SecondsPerStep, double SamplesPerSecond, double FlopsPerSecond, string? Failure)
{
    /// <summary>The value the metric ranks by, larger is better (latency is negated).</summary>
    public double Score(AutotuningMetric metric) => Failure is not null ? double.NegativeInfinity : metric switch
    {
        AutotuningMetric.Latency => -SecondsPerStep,
        AutotuningMetric.Flops => FlopsPerSecond,
        _ => SamplesPerSecond,
    };
}

/// <summary>
/// <c>tune</c>: DeepSpeed's autotuner (<c>deepspeed --autotuning tune</c>) as a verb. The search space comes from the
/// config (<see cref="AutotuningSpace"/>: what does not fit in memory is known from the plan, not from an
/// out-of-memory error); each remaining candidate trains end_profile_step optimizer steps on random tokens in this
/// job (every rank under mpirun), the steps from start_profile_step on are timed, and the best by the metric is
/// written as <c>ds_config_optimal.json</c> (the input config with its lists replaced by the winner's values) beside
/// <c>experiments.csv</c>, under <c>--output</c>/results_dir.
/// </summary>
public static class TuneCommand
{
    public static int Run<TModel>(RunSettings settings, long? memoryLimit, TextWriter output) where TModel : ILanguageModelDefinition
    {
        var config = settings.Config;
        var tuning = config.Autotuning ?? new AutotuningConfig { Enabled = true };
        using var communicator = Communicators.Create(gpuJob: settings.Device == BackendKind.Cuda);
        int ranks = communicator.Size;
        var log = communicator.Rank == 0 ? output : TextWriter.Null;
        log.WriteLine(settings.DeviceChoice.Description);
        if (config.Autotuning is null) log.WriteLine("note: the config has no enabled autotuning section; DeepSpeed's defaults are used");

        bool cuda = settings.Device == BackendKind.Cuda;
        var (limit, source) = memoryLimit is { } given ? (given, "--memory-limit-mib")
            : cuda ? ((long)CudaDevice.Get(0).TotalMemory, "the GPU's memory")
            : (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, "this machine's memory");
        var space = AutotuningSpace.Build(config, tuning, ranks, limit, source, candidate => PlannedBytes<TModel>(candidate, ranks, cuda));
        log.WriteLine(space.Describe());

        // The first experiments would also pay for compiling the code (.NET's tiered JIT recompiles hot methods after
        // some 30 calls and a short delay; the GPU's kernels compile on first use): an untimed run of the first
        // candidate, at least 20 steps, so that every candidate is timed on the same compiled code.
        if (space.ToTime.FirstOrDefault() is { } first)
            Time<TModel>(settings, first, tuning with { StartProfileStep = 1, EndProfileStep = Math.Max(20, tuning.EndProfileStep) }, communicator);
        var experiments = new List<AutotuningExperiment>();
        foreach (var candidate in space.ToTime)
        {
            var experiment = Time<TModel>(settings, candidate, tuning, communicator);
            experiments.Add(experiment);
            log.WriteLine(experiment.Failure is { } failure
                ? $"stage {candidate.Stage}, micro-batch {candidate.MicroBatch}: failed: {failure}"
                : FormattableString.Invariant($"stage {candidate.Stage}, micro-batch {candidate.MicroBatch} × accumulation {candidate.GradientAccumulation}: {experiment.SecondsPerStep * 1000:F1} ms/step, {experiment.SamplesPerSecond:F1} samples/s"));
        }

        var best = experiments.Where(e => e.Failure is null).OrderByDescending(e => e.Score(tuning.Metric)).FirstOrDefault();
        if (communicator.Rank != 0) return best is null ? 1 : 0;
        string directory = Path.Combine(settings.OutputDirectory, tuning.ResultsDirectory);
        Directory.CreateDirectory(directory);
        WriteExperiments(Path.Combine(directory, "experiments.csv"), experiments);
        if (best is null)
        {
            log.WriteLine($"no candidate ran: nothing written but {Path.Combine(directory, "experiments.csv")}");
            return 1;
        }

        string optimal = Path.Combine(directory, "ds_config_optimal.json");
        File.WriteAllText(optimal, OptimalConfigJson(config, best.Candidate));
        log.WriteLine($"best by {AutotuningConfig.MetricName(tuning.Metric)}: ZeRO stage {best.Candidate.Stage}, micro-batch {best.Candidate.MicroBatch}, " +
                      $"accumulation {best.Candidate.GradientAccumulation}: {optimal} (train with --config {optimal})");
        return 0;
    }

    /// <summary>The bytes a candidate must fit in: the device's share on a GPU, everything on the CPU backend.</summary>
    public static long PlannedBytes<TModel>(DeepSpeedConfig candidate, int ranks, bool cuda) where TModel : ILanguageModelDefinition
    {
        var storage = candidate.Storage;
        var plan = MemoryPlan.Predict(TModel.ParameterLayout, TModel.ActivationPlan, TModel.GradientPool, TModel.ParameterPool, candidate, ranks, 0,
            cuda ? storage.BytesPerElement() : sizeof(float), exchangesInDeviceMemory: cuda);
        return cuda ? plan.Device : plan.Total;
    }

    private static AutotuningExperiment Time<TModel>(RunSettings settings, AutotuningCandidate candidate, AutotuningConfig tuning, ICommunicator communicator)
        where TModel : ILanguageModelDefinition
    {
        var config = candidate.Apply(settings.Config);
        var batch = config.Resolve(communicator.Size);
        CompiledLanguageModel<float>? program = null;
        try
        {
            program = TModel.Compile(TrainingEngine.CreateBackend(config, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool, settings.Device), batch.MicroBatchPerGpu);
            TModel.ParameterLayout.Initialize(program.Parameters, seed: 1);
            var engine = TrainingEngine.Initialize(program, config, communicator);
            var (inputs, targets) = BenchCommand.RandomTokens(batch.MicroBatchPerGpu * program.SequenceLength, TModel.VocabularySize, settings.Seed);

            var clock = new Stopwatch();
            for (int step = 1; step <= tuning.EndProfileStep; step++)
            {
                if (step == tuning.StartProfileStep)
                {
                    BenchCommand.FindOps<CudaOps>(program.Ops)?.Synchronize();
                    clock.Start();
                }

                for (int micro = 0; micro < batch.GradientAccumulationSteps; micro++)
                {
                    engine.ForwardBackward(inputs, targets);
                    engine.Step();
                }
            }

            BenchCommand.FindOps<CudaOps>(program.Ops)?.Synchronize();
            double seconds = clock.Elapsed.TotalSeconds / (tuning.EndProfileStep - tuning.StartProfileStep + 1);
            double samples = batch.TrainBatchSize / seconds;
            double flops = TrainingFlops.Of(TModel.ParameterLayout, TModel.ActivationPlan).PerToken * batch.TrainBatchSize * program.SequenceLength / seconds;
            return new AutotuningExperiment(candidate, seconds, samples, flops, null);
        }
        catch (Exception refused) when (refused is Ops.BackendCapacityException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            return new AutotuningExperiment(candidate, double.NaN, double.NaN, double.NaN, refused.Message.Split('\n')[0]);
        }
        finally
        {
            // A GPU candidate's arenas go before the next one allocates its own.
            if (program is not null) BenchCommand.FindOps<CudaOps>(program.Ops)?.Dispose();
        }
    }

    private static void WriteExperiments(string path, IEnumerable<AutotuningExperiment> experiments)
    {
        var text = new StringBuilder("zero_stage,micro_batch,gradient_accumulation,planned_bytes,ms_per_step,samples_per_second,flops_per_second,failure\n");
        foreach (var e in experiments)
        {
            var c = e.Candidate;
            text.Append(CultureInfo.InvariantCulture,
                $"{c.Stage},{c.MicroBatch},{c.GradientAccumulation},{c.PredictedBytes},{e.SecondsPerStep * 1000:R},{e.SamplesPerSecond:R},{e.FlopsPerSecond:R},{(e.Failure ?? "").Replace(',', ';')}\n");
        }

        File.WriteAllText(path, text.ToString());
    }

    /// <summary>
    /// The user's config file with the winner's micro-batch, accumulation and stage in place of the lists, and
    /// autotuning switched off (the file is for train); the built-in default config where no file was given.
    /// </summary>
    public static string OptimalConfigJson(DeepSpeedConfig config, AutotuningCandidate best)
    {
        string text = File.Exists(config.SourceName) ? File.ReadAllText(config.SourceName) : DefaultConfig.Json;
        var root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })!.AsObject();
        root["train_micro_batch_size_per_gpu"] = best.MicroBatch;
        if (config.TrainBatchSize is null) root["gradient_accumulation_steps"] = best.GradientAccumulation;
        if (root["zero_optimization"] is not JsonObject zero)
        {
            zero = new JsonObject();
            root["zero_optimization"] = zero;
        }

        zero["stage"] = best.Stage;
        if (root["autotuning"] is JsonObject autotuning) autotuning["enabled"] = false;
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
