using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Training.Curriculum;
using Shardwise.Training.LayerDrop;
using Shardwise.Training.TokenDrop;
using Shardwise.Training.Engine;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>train</c>: the DeepSpeed-style loop. Each optimizer step runs gradient_accumulation_steps micro-batches
/// (forward, backward, step); validation, progress lines, checkpoints and the metrics CSV follow their intervals.
/// </summary>
public static class TrainCommand
{
    /// <param name="group">The data-parallel group to train in; null: from the environment (mpirun, or one process).</param>
    public static int Run<TModel>(RunSettings settings, TextWriter output, ICommunicator? group = null) where TModel : ILanguageModelDefinition
    {
        // Under mpirun every process is one data-parallel rank; alone, a single rank.
        using var owned = group is null ? Communicators.Create(gpuJob: settings.Device == BackendKind.Cuda) : null;
        var (communicator, comms) = CommsLogging.Wrap(group ?? owned!, settings.Config.CommsLogger, output);
        int rank = communicator.Rank, ranks = communicator.Size;
        var log = rank == 0 ? output : TextWriter.Null;
        if (settings.Config.CommsLogger.Enabled && comms is null)
            log.WriteLine("note: comms_logger: NCCL's device collectives are not logged (the communicator is passed to the device path unwrapped)");
        var config = settings.Config;
        var batch = config.Resolve(ranks);
        if (settings.PrintConfig)
        {
            log.WriteLine(config.Describe(ranks));
            return 0;
        }
        log.WriteLine(settings.DeviceChoice.Description);
        if (config.DumpState) log.WriteLine("effective configuration (dump_state):" + Environment.NewLine + config.Describe(ranks));

        Directory.CreateDirectory(settings.OutputDirectory);
        var store = new TrainingCheckpoint(settings.OutputDirectory);
        var resumeFrom = settings.ResumeDirectory is null ? null : TrainingCheckpoint.FindLatest(settings.ResumeDirectory);
        if (settings.ResumeDirectory is not null && resumeFrom is null)
            throw new CliException($"--resume {settings.ResumeDirectory}: no committed checkpoint there (no 'latest')");

        // A resumed run, or a new one from a checkpoint's weights, encodes text with the checkpoint's tokenizer.
        string? tokenizerFrom = resumeFrom ?? (settings.InitFrom is { } source ? PretrainedWeights.CheckpointOf(source) : null);
        var data = TrainingData.Load(settings.DataPath, settings.TokenizerKind, TModel.VocabularySize, settings.Seed,
            tokenizerFrom is null ? null : TrainingCheckpoint.LoadTokenizer(tokenizerFrom), settings.Packing, TModel.SequenceLength);
        var program = TModel.Compile(TrainingEngine.CreateBackend(settings.Config, TModel.ParameterLayout, TModel.GradientPool, TModel.ParameterPool, settings.Device), batch.MicroBatchPerGpu);
        TModel.ParameterLayout.Initialize(program.Parameters, unchecked((int)settings.Seed));
        // Before the engine takes its masters (and, at ZeRO-3, gives the full buffer up for its pool).
        if (settings.InitFrom is { } init) log.WriteLine(PretrainedWeights.Load(init, TModel.ParameterLayout, program.Parameters, typeof(TModel).Name, config));
        var engine = TrainingEngine.Initialize(program, config, communicator);
        // One global sampler, identical on every rank; each rank trains on its own rows of the global micro-batch.
        int globalRows = batch.MicroBatchPerGpu * ranks;
        var sampler = data.Dataset.CreateSampler(DataSplit.Train, globalRows, program.SequenceLength, settings.Seed);
        var evaluation = new Evaluation(program, data, settings.EvalBatches, settings.Seed + 1);

        log.WriteLine($"model {typeof(TModel).Name}: {TModel.ParameterLayout.ParameterCount:N0} parameters; data: {data.Description}");
        log.WriteLine($"batch: micro {batch.MicroBatchPerGpu} × accumulation {batch.GradientAccumulationSteps} × ranks {ranks} = {batch.TrainBatchSize} sequences of {program.SequenceLength} tokens; " +
                      $"precision {engine.Storage}; ZeRO stage {config.ZeroOptimization.Stage}; steps {settings.TotalSteps}");
        if (config.Elasticity is { } elastic)
        {
            var choice = Elasticity.ElasticBatch.For(elastic, ranks);
            log.WriteLine($"elasticity (version {elastic.Version}): the batch of {choice.TrainBatchSize} trains on {string.Join(", ", choice.ValidDataParallelSizes)} data-parallel ranks; " +
                          $"this run's {ranks} take micro-batches of {choice.MicroBatchPerGpu}");
        }
        if (SparseAttentionCheck.Describe(config, program.SequenceLength) is { } sparse) log.WriteLine(sparse);
        var curriculum = config.CurriculumLearning is { } schedule ? new SequenceLengthCurriculum(schedule) : null;
        if (curriculum is not null) log.WriteLine(curriculum.Describe(program.SequenceLength));
        var layerDrop = ProgressiveLayerDrop.For(config, TModel.DroppableLayers, typeof(TModel).Name, settings.Seed);
        if (layerDrop is not null) log.WriteLine(layerDrop.Describe());
        var tokenDrop = RandomLtd.For(config, TModel.TokenDropLayers, typeof(TModel).Name, settings.Seed);
        if (tokenDrop is not null) log.WriteLine(tokenDrop.Describe(program.SequenceLength));
        if (engine.Compression is { } compression)
        {
            foreach (var line in compression.Describe()) log.WriteLine(line);
            compression.Report = log.WriteLine;
        }
        if (program.Ops.ActivationQuantizer is ModelCompression.ActivationQuantizer activations) log.WriteLine(activations.Describe());
        log.WriteLine("memory: " + engine.DescribeMemory());
        log.WriteLine("optimizer step: " + engine.DescribeOptimizerStep());
        if (resumeFrom is not null)
        {
            TrainingCheckpoint.Load(resumeFrom, engine, sampler, log);
            log.WriteLine($"resumed from {resumeFrom} at step {engine.GlobalStep}");
        }

        var progress = new ProgressReporter(log, isTerminal: ReferenceEquals(log, Console.Out) && !Console.IsOutputRedirected, settings.TotalSteps);
        using var csv = rank == 0 ? new MetricsCsvWriter(Path.Combine(settings.OutputDirectory, "metrics.csv")) : null;
        using var monitors = Monitors.Open(config, settings.OutputDirectory, rank == 0, () => DeviceMemory(program.Ops), log);
        var trainCurve = new List<(long Step, double Loss)>();
        var validationCurve = new List<(long Step, double Loss)>();
        var inputs = new int[globalRows * program.SequenceLength];
        var targets = new int[inputs.Length];
        int mine = rank * batch.MicroBatchPerGpu * program.SequenceLength, rowsLength = batch.MicroBatchPerGpu * program.SequenceLength;
        var timers = new StepTimers(config.WallClockBreakdown, DeviceSettle(program.Ops));
        var clock = new Stopwatch();
        double intervalLoss = 0;
        int intervalSteps = 0;
        double intervalMs = 0;

        while (engine.GlobalStep < settings.TotalSteps)
        {
            // DeepSpeed profiles the step that runs while global_steps equals profile_step.
            bool profiling = config.FlopsProfiler.Enabled && engine.GlobalStep == config.FlopsProfiler.ProfileStep;
            if (profiling) timers.BeginProfiledStep();
            var profiledKeeps = profiling ? new List<LayerKeep>() : null; // the profiled step's micro-batches' blocks (progressive layer drop)
            var profiledTokens = profiling ? new List<TokenKeep>() : null; // and their kept tokens (random-LTD)
            clock.Restart();
            double loss = 0;
            for (int micro = 0; micro < batch.GradientAccumulationSteps; micro++)
            {
                sampler.NextBatch(inputs, targets);
                // Validation keeps whole sequences: its loss measures the model, not the curriculum's stage.
                if (curriculum is not null)
                    SequenceLengthCurriculum.MaskTargets(targets, program.SequenceLength, curriculum.LengthAt(engine.GlobalStep));
                // Set for the micro-batch's forward and backward alike; validation below runs with every layer.
                if (layerDrop is not null)
                {
                    program.LayerKeep = layerDrop.Sample(engine.GlobalStep, micro);
                    profiledKeeps?.Add(program.LayerKeep);
                }
                if (tokenDrop is not null)
                {
                    program.TokenKeep = tokenDrop.Keep(engine.GlobalStep, micro, batch.MicroBatchPerGpu, program.SequenceLength, firstSample: rank * batch.MicroBatchPerGpu);
                    profiledTokens?.Add(program.TokenKeep);
                }
                timers.Start();
                if (timers.Enabled)
                {
                    // Timed apart: the forward's loss op then leaves the logits' gradient to the backward.
                    loss += engine.Forward(inputs.AsSpan(mine, rowsLength), targets.AsSpan(mine, rowsLength));
                    timers.ForwardDone();
                    engine.Backward();
                    timers.BackwardDone();
                }
                else
                {
                    loss += engine.ForwardBackward(inputs.AsSpan(mine, rowsLength), targets.AsSpan(mine, rowsLength));
                }
                engine.Step();
                timers.StepDone();
            }
            program.LayerKeep = null;
            program.TokenKeep = null;
            loss /= batch.GradientAccumulationSteps;
            double ms = clock.Elapsed.TotalMilliseconds;
            long step = engine.GlobalStep;
            if (profiling)
            {
                var (forward, backward, optimizer) = timers.EndProfiledStep();
                var costs = layerDrop?.ExecutedCosts(TModel.OperationCosts, profiledKeeps!) ?? TModel.OperationCosts;
                if (tokenDrop is not null) costs = tokenDrop.ExecutedCosts(costs, profiledTokens!, program.SequenceLength);
                if (rank == 0) WriteFlopsProfile<TModel>(config, batch, ranks, costs, new ProfiledStep(config.FlopsProfiler.ProfileStep, forward, backward, optimizer, ms), log);
            }
            intervalLoss += loss;
            intervalSteps++;
            intervalMs += ms;
            trainCurve.Add((step, loss));
            progress.Tick(step, loss, ms);

            Evaluation.Result? validation = null;
            // Every rank evaluates (under ZeRO-3 a forward pass gathers parameters, a collective); rank 0 reports.
            if (settings.EvalInterval > 0 && (step % settings.EvalInterval == 0 || step == settings.TotalSteps))
            {
                validation = evaluation.Run(program);
                validationCurve.Add((step, validation.Value.Loss));
            }

            if (rank == 0 && (step % config.StepsPerPrint == 0 || step == settings.TotalSteps || validation is not null))
            {
                double averageMs = intervalMs / intervalSteps;
                var metrics = Metrics(engine, step, settings.TotalSteps, intervalLoss / intervalSteps, averageMs,
                    batch.TrainBatchSize * program.SequenceLength, validation, timers.Average(intervalSteps));
                progress.Report(metrics);
                csv!.Append(metrics);
                monitors.Report(metrics, batch.TrainBatchSize);
                intervalLoss = intervalMs = 0;
                intervalSteps = 0;
                timers.Reset();
            }

            if (step % settings.SaveInterval == 0 || step == settings.TotalSteps)
                store.Save(engine, sampler, data.Tokenizer, settings);
        }

        progress.Finish();
        if (rank != 0) return 0;
        CommsLogging.Report(comms, log);
        if (engine.OverlappedBuckets > 0)
            log.WriteLine($"gradient buckets reduced while the last backward ran: {engine.OverlappedBuckets:N0} (reduce_bucket_size {config.ZeroOptimization.ReduceBucketSize:N0})");
        if (DescribeParameterGathers(engine) is { } gathers) log.WriteLine(gathers);
        if (CudaBackend(program.Ops) is { GradientWireScratchBytes: > 0 } widened)
            log.WriteLine($"gradient exchanges widened to fp32 on the device (communication_data_type): {widened.GradientWireScratchBytes:N0} bytes of scratch");
        string plot = Path.Combine(settings.OutputDirectory, "loss.png");
        string plotted = "loss.png";
        try
        {
            LossCurvePlot.Write(plot, trainCurve, validationCurve, $"{typeof(TModel).Name} on {(settings.DataPath is null ? "the addition task" : Path.GetFileName(settings.DataPath))}");
        }
        catch (Exception missing) when (missing is DllNotFoundException or TypeInitializationException)
        {
            // A deployment without the plotting natives (the GPU suite leaves SkiaSharp behind to fit its carry) still
            // trained: metrics.csv holds the curve, so the run succeeds and says why there is no picture.
            log.WriteLine($"loss.png not written: the plotting library could not be loaded ({missing.GetBaseException().Message.Split('\n')[0]})");
            plotted = "no loss.png";
        }
        log.WriteLine($"done: {engine.GlobalStep} steps, {engine.LossScaler.SkippedSteps} skipped; checkpoints, metrics.csv and {plotted} in {settings.OutputDirectory}");
        return 0;
    }

    /// <summary>The FLOPS profiler's report (rank 0): to the log, and to flops_profiler.output_file when set.</summary>
    private static void WriteFlopsProfile<TModel>(Config.DeepSpeedConfig config, Config.BatchSizes batch, int ranks, IReadOnlyList<OperationCost> costs,
        ProfiledStep measured, TextWriter log)
        where TModel : ILanguageModelDefinition
    {
        string report = FlopsProfileReport.Describe(typeof(TModel).Name, costs, TModel.ParameterLayout, batch, ranks, config.FlopsProfiler, measured);
        log.WriteLine(report);
        if (config.FlopsProfiler.OutputFile is not { } file) return;
        try
        {
            File.WriteAllText(file, report + Environment.NewLine);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A report is not worth the run: say so and train on.
            log.WriteLine($"warning: $.flops_profiler.output_file \"{file}\" could not be written ({e.Message}); the report above is the only copy");
        }
    }

    /// <summary>ZeRO-3's parameter requests over the run (this rank's), and how they were served; null when nothing was gathered.</summary>
    internal static string? DescribeParameterGathers(TrainingEngine engine) => engine.ParameterRequests == 0 ? null
        : $"ZeRO-3 parameter gathers: {engine.ParameterRequests:N0} requests, {engine.PrefetchHits:N0} served from prefetch"
          + (engine.SecondaryGathers > 0 ? $", {engine.SecondaryGathers:N0} from the hpZ group's copy" : "")
          + (engine.DroppedLayerSkips > 0 ? $"; {engine.DroppedLayerSkips:N0} not gathered, their layer dropped" : "");

    /// <summary>The CUDA backend under a program's operations (inside the ZeRO-2/3 streaming decorator), or null on the CPU.</summary>
    internal static CudaOps? CudaBackend(Ops.ITensorOps<float> ops) =>
        Zero.GradientStreamingOps<float>.Backend(ops) as CudaOps;

    /// <summary>The GPU's memory in use and its total, or null on the CPU.</summary>
    internal static (long Used, long Total)? DeviceMemory(Ops.ITensorOps<float> ops) =>
        CudaBackend(ops) is { } cuda && cuda.SampleDeviceMemory() is var use ? (use.UsedBytes, use.TotalBytes) : null;

    /// <summary>Waits for a GPU's queued work (so a lap times the work, not its launch); nothing to wait for on the CPU.</summary>
    private static Action? DeviceSettle(Ops.ITensorOps<float> ops) => CudaBackend(ops) is { } cuda ? cuda.Synchronize : null;

    private static StepMetrics Metrics(TrainingEngine engine, long step, long total, double loss, double ms, int tokensPerStep,
        Evaluation.Result? validation, (double Forward, double Backward, double Step)? breakdown)
    {
        var memory = engine.Memory;
        return new StepMetrics(
            Step: step,
            TotalSteps: total,
            Loss: loss,
            LearningRate: engine.LastLearningRate,
            LossScale: engine.LossScaler.Scale,
            SkippedSteps: engine.LossScaler.SkippedSteps,
            TokensPerSecond: tokensPerStep / (ms / 1000.0),
            MillisecondsPerStep: ms,
            GradientNorm: engine.LastGradientNorm,
            Memory: new MemoryBreakdown(memory.Parameters, memory.Gradients, memory.MasterWeights, memory.OptimizerStates, memory.Activations, memory.Buffers),
            ValidationLoss: validation?.Loss,
            Accuracy: validation?.Accuracy,
            WallClock: breakdown is { } b ? new WallClockBreakdown(b.Forward, b.Backward, b.Step) : null);
    }
}
