using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using Shardwise.Checkpoints;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Data;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Training.Config;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Curriculum;
using Shardwise.Training.LayerDrop;
using Shardwise.Training.Engine;
using Shardwise.Training.Pipeline;
using Shardwise.Training.Progress;
using Shardwise.Training.Zero;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>train</c> for a model planned with Pipeline or Tensor above 1, on W = d · p · t ranks: each rank compiles its
/// stage program for its tensor rank and trains it with <see cref="PipelineEngine"/> (1F1B over
/// gradient_accumulation_steps micro-batches). Data as in <see cref="TrainCommand"/>: one global sampler on every rank,
/// and each data replica takes its rows of every global micro-batch, so a run sees the data of one process with
/// micro-batch d × micro. The stages run on --device (CPU or CUDA, each rank on its local rank's GPU); what crosses
/// between ranks goes through the communicator's host spans. World rank 0 prints, writes metrics.csv and, at the end, the full fp32 weights gathered from
/// its replica (weights.safetensors). Checkpoints (every --save-interval steps and at the end) are in the one-process
/// format (<see cref="PipelineCheckpoint"/>), so --resume takes either kind. A single process trains the whole model
/// instead (<see cref="TrainCommand"/>).
/// </summary>
public static class PipelineTrainCommand
{
    public const string WeightsFile = "weights.safetensors";

    /// <param name="world">Every rank of the job; null: from the environment (mpirun, or one process).</param>
    public static int Run<TModel>(RunSettings settings, TextWriter output, ICommunicator? world = null) where TModel : IPartitionedModelDefinition
    {
        using var owned = world is null ? Communicators.Create(gpuJob: settings.Device == BackendKind.Cuda) : null;
        var job = world ?? owned!;
        var partition = TModel.Partition;
        string model = typeof(TModel).Name;
        TensorParallelCheck.Require(settings.Config, model, partition.Tensor);
        PipelineSectionCheck.RequireStages(settings.Config, model, partition.Pipeline);
        if (job.Size == 1)
        {
            output.WriteLine($"one process: training {model}'s whole program (planned for [Model(Pipeline = {partition.Pipeline}, Tensor = " +
                $"{partition.Tensor})]; launch with mpirun -np {partition.Pipeline * partition.Tensor} or a multiple to run its stages)");
            return TrainCommand.Run<TModel>(settings, output, job);
        }
        if (partition.Tensor > 1 && TrainingEngine.Compresses(settings.Config))
            throw new ConfigException(settings.Config.SourceName, [$"{CompressionTrainingConfig.SectionPath}: {model} splits tensors over {partition.Tensor} tensor ranks, and compression " +
                "training is not supported with tensor parallelism yet (its quantization groups and masks span whole tensors); pipeline stages and one process train it"]);
        // Every group is split from the world, so a logging world logs every stage, tensor and data group's calls.
        var (communicator, comms) = CommsLogging.Wrap(job, settings.Config.CommsLogger, output);
        if (communicator.Rank == 0) output.WriteLine(settings.DeviceChoice.Description);
        if (communicator.Size % (partition.Pipeline * partition.Tensor) != 0)
            throw new CliException($"{model}: the job has {communicator.Size} ranks, but the model is planned for [Model(Pipeline = " +
                $"{partition.Pipeline}, Tensor = {partition.Tensor})]: the number of ranks must be a multiple of Pipeline × Tensor = " +
                $"{partition.Pipeline * partition.Tensor}");

        using var groups = ParallelGroups.Create(communicator, partition);
        var (stageIndex, replica, tensorRank) = groups.Coordinates;
        int data = groups.Topology.Data;
        var log = communicator.Rank == 0 ? output : TextWriter.Null;
        var config = settings.Config;
        var batch = config.Resolve(data);
        if (settings.PrintConfig)
        {
            log.WriteLine(config.Describe(data));
            return 0;
        }
        if (config.DumpState) log.WriteLine("effective configuration (dump_state):" + Environment.NewLine + config.Describe(data));
        Directory.CreateDirectory(settings.OutputDirectory);
        var store = new TrainingCheckpoint(settings.OutputDirectory);
        var resumeFrom = settings.ResumeDirectory is null ? null : TrainingCheckpoint.FindLatest(settings.ResumeDirectory);
        if (settings.ResumeDirectory is not null && resumeFrom is null)
            throw new CliException($"--resume {settings.ResumeDirectory}: no committed checkpoint there (no 'latest')");

        var trainingData = TrainingData.Load(settings.DataPath, settings.TokenizerKind, TModel.VocabularySize, settings.Seed,
            (resumeFrom ?? (settings.InitFrom is { } source ? PretrainedWeights.CheckpointOf(source) : null)) is { } tokenizerFrom
                ? TrainingCheckpoint.LoadTokenizer(tokenizerFrom) : null, settings.Packing, TModel.SequenceLength);
        var plan = partition.Stages[stageIndex];
        // Over the chosen device (--device) and the backend the config asks for: at ZeRO-2 the stage's gradients stream
        // through its planned pool. Activations and gradients between stages cross through the communicator's host spans.
        // Stages store fp32 even for fp16/bf16 configs (the engine rounds parameters and gradients to 16-bit on the host,
        // as on the CPU): the tensor groups' all-reduces also carry the vocabulary-parallel loss's fp32 row statistics,
        // which a 16-bit CUDA arena keeps in a layout the exchanges do not know about yet (a 16-bit HybridGpt stage
        // trained to a wrong loss on the emulated device).
        var stage = TModel.CompileStage<float>(stageIndex,
            TrainingEngine.CreateBackend(config, plan.Layout, plan.GradientPool, plan.ParameterPool, settings.Device, StorageType.Float32),
            batch.MicroBatchPerGpu);
        // Tensor ranks hold consecutive heads: each applies its slice of the whole model's block-sparse layout.
        if (config.SparseAttention is { } sparse) stage.Ops.AttentionSparsity = sparse.ForTensorRank(tensorRank, partition.Tensor);
        // Every rank initialises the whole model from the seed and keeps its part: the same start as one process.
        var full = new float[TModel.ParameterLayout.TotalElements];
        TModel.ParameterLayout.Initialize<float>(full, unchecked((int)settings.Seed));
        if (settings.InitFrom is { } init) log.WriteLine(PretrainedWeights.Load(init, TModel.ParameterLayout, full, model, config));
        PartitionedParameters.Extract(TModel.ParameterLayout, full, stage.Stage, tensorRank, stage.Parameters);
        var engine = new PipelineEngine(stage, config, groups);
        if (TrainingEngine.Compresses(config))
        {
            // What every stage compresses, from the whole model's plan; rank 0's stage reports its own masks and bits.
            var whole = new ModelCompression.WeightCompression(config.CompressionTraining!, ModelCompression.CompressionPlan.For(TModel.ParameterLayout, config.CompressionTraining!));
            foreach (var line in whole.Describe()) log.WriteLine(line);
            engine.Engine.Compression!.Report = log.WriteLine;
        }

        int sequence = stage.SequenceLength, micro = batch.MicroBatchPerGpu, globalRows = micro * data;
        var sampler = trainingData.Dataset.CreateSampler(DataSplit.Train, globalRows, sequence, settings.Seed);
        log.WriteLine($"model {model}: {TModel.ParameterLayout.ParameterCount:N0} parameters in {partition.Pipeline} stages × {partition.Tensor} tensor ranks; " +
                      $"data: {trainingData.Description}; stages on {DeviceDescription(stage.Ops)} (rank 0)");
        log.WriteLine($"ranks: {communicator.Size} = data {data} × pipeline {partition.Pipeline} × tensor {partition.Tensor}; batch: micro {micro} × " +
                      $"micro-batches {engine.MicroBatches} × data {data} = {batch.TrainBatchSize} sequences of {sequence} tokens; ZeRO stage " +
                      $"{config.ZeroOptimization.Stage}; steps {settings.TotalSteps}; 1F1B bubble (p − 1)/(m + p − 1) = " +
                      $"{OneFOneBSchedule.BubbleFraction(partition.Pipeline, engine.MicroBatches):P1}");

        if (SparseAttentionCheck.Describe(config, sequence) is { } sparseLine) log.WriteLine(sparseLine);
        if (config.FlopsProfiler.Enabled)
            log.WriteLine("warning: $.flops_profiler is not printed by the pipelined trainer (its stages run interleaved micro-batches); " +
                          "`plan` lists each stage's FLOPs, and a one-process run of the model prints the profile");
        var curriculum = config.CurriculumLearning is { } schedule ? new SequenceLengthCurriculum(schedule) : null;
        if (curriculum is not null) log.WriteLine(curriculum.Describe(sequence));
        engine.LayerDrop = ProgressiveLayerDrop.For(config, TModel.DroppableLayers, model, settings.Seed);
        if (engine.LayerDrop is not null) log.WriteLine(engine.LayerDrop.Describe());
        engine.TokenDrop = TokenDrop.RandomLtd.For(config, TModel.TokenDropLayers, model, settings.Seed);
        if (engine.TokenDrop is not null) log.WriteLine(engine.TokenDrop.Describe(sequence));
        var report = engine.Memory; // this rank's stage, one activation window per micro-batch in flight
        log.WriteLine($"memory (stage {stageIndex}, {engine.ActivationWindows} activation windows): {report.Describe()}");
        log.WriteLine("optimizer step: " + engine.Engine.DescribeOptimizerStep());
        log.WriteLine("stage boundaries: " + (engine.BoundariesOnDevice
            ? "activations and their gradients sent device to device (NCCL)"
            : "activations and their gradients sent through host memory")
            + (partition.Tensor > 1
                ? "; tensor-parallel all-reduces " + (engine.TensorReductionsOnDevice ? "in device memory (NCCL)" : "through host memory")
                : "")
            + (engine.BoundariesInParts switch
            {
                (true, true) => $"; activations and gradients cross in {partition.Tensor} parts, one per tensor rank (pipe_partitioned, grad_partitioned)",
                (true, false) => $"; activations cross in {partition.Tensor} parts, one per tensor rank (pipe_partitioned)",
                (false, true) => $"; gradients cross in {partition.Tensor} parts, one per tensor rank (grad_partitioned)",
                _ => "",
            }));
        if (resumeFrom is not null)
        {
            PipelineCheckpoint.Load(resumeFrom, engine, TModel.ParameterLayout, sampler, log);
            log.WriteLine($"resumed from {resumeFrom} at step {engine.Engine.GlobalStep}");
        }
        var memory = new MemoryBreakdown(report.Parameters, report.Gradients, report.MasterWeights, report.OptimizerStates, report.Activations, report.Buffers);
        using var csv = communicator.Rank == 0 ? new MetricsCsvWriter(Path.Combine(settings.OutputDirectory, "metrics.csv")) : null;
        using var monitors = Monitors.Open(config, settings.OutputDirectory, communicator.Rank == 0, () => TrainCommand.DeviceMemory(engine.Stage.Ops), log);
        var globalTokens = new int[globalRows * sequence];
        var globalTargets = new int[globalTokens.Length];
        var tokens = new int[engine.TokensPerBatch];
        var targets = new int[tokens.Length];
        int rowsLength = micro * sequence;
        var clock = new Stopwatch();
        var curve = new List<(long Step, double Loss)>();
        double intervalLoss = 0, intervalMs = 0;
        int intervalSteps = 0;
        while (engine.Engine.GlobalStep < settings.TotalSteps)
        {
            clock.Restart();
            for (int m = 0; m < engine.MicroBatches; m++)
            {
                sampler.NextBatch(globalTokens, globalTargets);
                if (curriculum is not null)
                    SequenceLengthCurriculum.MaskTargets(globalTargets, sequence, curriculum.LengthAt(engine.Engine.GlobalStep));
                globalTokens.AsSpan(replica * rowsLength, rowsLength).CopyTo(tokens.AsSpan(m * rowsLength));
                globalTargets.AsSpan(replica * rowsLength, rowsLength).CopyTo(targets.AsSpan(m * rowsLength));
            }
            double loss = engine.TrainBatch(tokens, targets);
            double ms = clock.Elapsed.TotalMilliseconds;
            long step = engine.Engine.GlobalStep;
            curve.Add((step, loss));
            intervalLoss += loss;
            intervalMs += ms;
            intervalSteps++;
            // As TrainCommand: a checkpoint every save interval and at the end, in the one-process format (a collective).
            if (step % settings.SaveInterval == 0 || step == settings.TotalSteps)
                PipelineCheckpoint.Save(store, engine, partition, TModel.ParameterLayout, sampler, trainingData.Tokenizer, settings);
            if (communicator.Rank != 0 || (step % config.StepsPerPrint != 0 && step != settings.TotalSteps)) continue;
            // As TrainCommand: one line and one CSV row per print interval, with the interval's mean loss.
            double meanLoss = intervalLoss / intervalSteps, meanMs = intervalMs / intervalSteps;
            log.WriteLine(FormattableString.Invariant($"step {step}/{settings.TotalSteps} loss {meanLoss:F4} lr {engine.Engine.LastLearningRate:E2} ") +
                          FormattableString.Invariant($"grad norm {engine.Engine.LastGradientNorm:F4} {meanMs:F0} ms/step blocked in receives {engine.LastIdleFraction:P1} (rank 0, last step)"));
            var metrics = new StepMetrics(step, settings.TotalSteps, meanLoss, engine.Engine.LastLearningRate, engine.Engine.LossScaler.Scale,
                engine.Engine.LossScaler.SkippedSteps, batch.TrainBatchSize * sequence / (meanMs / 1000.0), meanMs, engine.Engine.LastGradientNorm, memory);
            csv!.Append(metrics);
            monitors.Report(metrics, batch.TrainBatchSize);
            intervalLoss = intervalMs = 0;
            intervalSteps = 0;
        }

        // Full fp32 weights, streamed a parameter at a time from replica 0's stages to world rank 0 (ZeRO-1 partitions
        // first gathered within each data group).
        float[] stageMasters = engine.Engine.ExportFullState().Master;
        if (groups.Coordinates.DataRank == 0 && communicator.Rank != 0)
            PartitionedParameters.StreamToFirst(groups.ModelParallel, partition, TModel.ParameterLayout, stageMasters, write: null);
        if (communicator.Rank != 0) return 0;
        NamedWeightsFile.Write(Path.Combine(settings.OutputDirectory, WeightsFile), TModel.ParameterLayout, new Dictionary<string, string> { ["format"] = "pt" },
            file => PartitionedParameters.StreamToFirst(groups.ModelParallel, partition, TModel.ParameterLayout, stageMasters, (slot, values) => file.Write(slot.Name, values)));
        LossCurvePlot.Write(Path.Combine(settings.OutputDirectory, "loss.png"), curve, [], $"{model}, {partition.Pipeline} stages × {partition.Tensor} tensor ranks × {data} replicas");
        CommsLogging.Report(comms, log);
        if (TrainCommand.DescribeParameterGathers(engine.Engine) is { } gathers) log.WriteLine(gathers + " (rank 0, stage 0)");
        log.WriteLine($"done: {engine.Engine.GlobalStep} steps; checkpoints, metrics.csv, loss.png and {WeightsFile} (full fp32 weights) in {settings.OutputDirectory}");
        return 0;
    }

    /// <summary>Where a stage program's operations run: the CPU, or the CUDA device (under the ZeRO-2 streaming decorator).</summary>
    private static string DeviceDescription(ITensorOps<float> ops) =>
        TrainCommand.CudaBackend(ops) is { } cuda ? $"CUDA device {cuda.Device}" : "the CPU";
}
