using System;
using Shardwise.Cpu;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Models;

/// <summary>
/// A generated partitioned model trained two ways on the same batches: its whole program in one process (plain
/// gradient accumulation over all d·m micro-batches), and its generated stage programs through
/// <see cref="PipelineEngine"/> on the ranks of a job (data replica r takes micro-batches r·m … r·m + m − 1).
/// </summary>
public static class GeneratedTraining
{
    public const int MicroBatch = 2;
    public const int Seed = 5;

    /// <summary>
    /// fp32 AdamW, clipping (0.25) tight enough to act on every step (so the model-parallel norm decides the update).
    /// ZeRO-3 keeps only slots under 50 elements whole (the default 1e5 would keep all of these small models' slots),
    /// and prefetches in buckets of 600 elements, so that gathers on demand and from the staging both happen.
    /// </summary>
    /// <param name="boundariesInParts">pipe_partitioned and grad_partitioned (DeepSpeed's defaults, true).</param>
    public static DeepSpeedConfig Config(int microBatches, int zeroStage, bool boundariesInParts = true) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": {{MicroBatch}}, "gradient_accumulation_steps": {{microBatches}}, "gradient_clipping": 0.25,
          "optimizer": { "type": "AdamW", "params": { "lr": 1e-2, "weight_decay": 0.1 } },
          "pipeline": { "pipe_partitioned": {{(boundariesInParts ? "true" : "false")}}, "grad_partitioned": {{(boundariesInParts ? "true" : "false")}} },
          "zero_optimization": { "stage": {{zeroStage}}, "stage3_param_persistence_threshold": 50, "stage3_prefetch_bucket_size": 600 } }
        """).Config;

    public static (int[] Tokens, int[] Targets) GlobalBatch<TModel>(int step, int microBatches) where TModel : ILanguageModelDefinition
    {
        var random = new Random(2000 + step);
        int count = microBatches * MicroBatch * TModel.SequenceLength;
        var tokens = new int[count];
        var targets = new int[count];
        for (int i = 0; i < count; i++)
        {
            tokens[i] = random.Next(TModel.VocabularySize);
            targets[i] = (5 * tokens[i] + 2) % TModel.VocabularySize; // a fixed rule, so the loss can fall
        }
        return (tokens, targets);
    }

    public static (double[] Losses, double[] Norms, float[] Weights) Whole<TModel>(int steps, int microBatches) where TModel : ILanguageModelDefinition
    {
        var program = TModel.Compile<float>(new CpuOps<float>(), MicroBatch);
        TModel.ParameterLayout.Initialize(program.Parameters, Seed);
        var engine = TrainingEngine.Initialize(program, Config(microBatches, 0));
        int perMicroBatch = MicroBatch * TModel.SequenceLength;
        var losses = new double[steps];
        var norms = new double[steps];
        for (int step = 0; step < steps; step++)
        {
            var (tokens, targets) = GlobalBatch<TModel>(step, microBatches);
            double sum = 0;
            for (int mb = 0; mb < microBatches; mb++)
            {
                sum += engine.Forward(tokens.AsSpan(mb * perMicroBatch, perMicroBatch), targets.AsSpan(mb * perMicroBatch, perMicroBatch));
                engine.Backward();
                engine.Step();
            }
            losses[step] = sum / microBatches;
            norms[step] = engine.LastGradientNorm;
        }
        return (losses, norms, program.Parameters.ToArray());
    }

    /// <param name="pipelineBytesSent">Receives the bytes this rank sent to its neighbouring stages over the run.</param>
    public static (double[] Losses, double[] Norms, float[] Weights) Pipelined<TModel>(ICommunicator world, int steps, int microBatches, int zeroStage,
        bool boundariesInParts = true, Action<long>? pipelineBytesSent = null)
        where TModel : IPartitionedModelDefinition
    {
        var partition = TModel.Partition;
        using var groups = ParallelGroups.Create(world, partition);
        var config = Config(microBatches, zeroStage, boundariesInParts);
        StagePlan plan = partition.Stages[groups.Coordinates.Stage];
        // ZeRO-2 streams gradients through the stage program's gradient pool: the backend must be built for it.
        var ops = TrainingEngine.CreateBackend(config, plan.Layout, plan.GradientPool, plan.ParameterPool);
        var stage = TModel.CompileStage<float>(groups.Coordinates.Stage, ops, MicroBatch);
        var full = new float[TModel.ParameterLayout.TotalElements];
        TModel.ParameterLayout.Initialize<float>(full, Seed);
        PartitionedParameters.Extract(TModel.ParameterLayout, full, stage.Stage, groups.Coordinates.TensorRank, stage.Parameters);
        var engine = new PipelineEngine(stage, config, groups);

        int replica = groups.Coordinates.DataRank, perReplica = engine.TokensPerBatch;
        var losses = new double[steps];
        var norms = new double[steps];
        for (int step = 0; step < steps; step++)
        {
            var (tokens, targets) = GlobalBatch<TModel>(step, groups.Topology.Data * microBatches);
            losses[step] = engine.TrainBatch(tokens.AsSpan(replica * perReplica, perReplica), targets.AsSpan(replica * perReplica, perReplica));
            norms[step] = engine.Engine.LastGradientNorm;
        }
        if (zeroStage == 3)
        {
            // The prefetch follows the stage's 1F1B passes, so only each step's first request (the parameters just
            // changed) is gathered on demand.
            if (engine.Engine.ParameterRequests == 0 || engine.Engine.ParameterRequests - engine.Engine.PrefetchHits != steps)
                throw new InvalidOperationException($"ZeRO-3 must gather parameters on the stages, all but each step's first ahead of their use: " +
                    $"{engine.Engine.ParameterRequests} requests in {steps} steps, {engine.Engine.PrefetchHits} prefetched");
            Console.WriteLine($"models probe rank {world.Rank}: stage {groups.Coordinates.Stage} gathered {engine.Engine.ParameterRequests} slots, {engine.Engine.PrefetchHits} of them prefetched");
        }
        pipelineBytesSent?.Invoke(groups.Pipeline.Traffic.TotalSent);
        float[] weights = PartitionedParameters.Gather(groups.ModelParallel, partition, TModel.ParameterLayout, engine.Engine.ExportFullState().Master);
        return (losses, norms, weights);
    }

    public static double RelativeDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            difference += (double)(a[i] - b[i]) * (a[i] - b[i]);
            norm += (double)b[i] * b[i];
        }
        return Math.Sqrt(difference / norm);
    }
}
