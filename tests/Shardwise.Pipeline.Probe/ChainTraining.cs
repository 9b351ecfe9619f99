using System;
using Shardwise.Cpu;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Probe;

/// <summary>What a training run produced: the loss of every step and the final weights in the model's full layout.</summary>
public sealed record ChainResult(double[] Losses, float[] Weights, double[] GradientNorms, double[] IdleFractions, long SkippedSteps = 0);

/// <summary>
/// The two runs the tests compare: one process training the whole <see cref="ChainModel"/> with plain gradient
/// accumulation, and a data × pipeline × tensor job training its stages through <see cref="PipelineEngine"/>, on the
/// same global batches (data replica r takes micro-batches r·m … r·m + m − 1 of each).
/// </summary>
public static class ChainTraining
{
    public const int MicroBatch = 2;
    public const int Seed = 3;

    /// <summary>fp32 AdamW with gradient clipping tight enough that every step clips (so the global norm matters).</summary>
    /// <param name="fp16">fp16 with a dynamic loss scale starting at 2^24, so the first steps overflow and are skipped.</param>
    public static DeepSpeedConfig Config(int microBatches, int zeroStage = 0, double clip = 0.05, bool fp16 = false) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": {{MicroBatch}}, "gradient_accumulation_steps": {{microBatches}},
          "fp16": { "enabled": {{(fp16 ? "true" : "false")}}, "initial_scale_power": 24 },
          "gradient_clipping": {{clip.ToString(System.Globalization.CultureInfo.InvariantCulture)}},
          "optimizer": { "type": "AdamW", "params": { "lr": 2e-2, "weight_decay": 0.1 } },
          "zero_optimization": { "stage": {{zeroStage}} } }
        """).Config;

    /// <summary>Token ids and next-token targets of every micro-batch of one step (targets follow a fixed rule, so the loss can fall).</summary>
    public static (int[] Tokens, int[] Targets) GlobalBatch(ChainModel model, int step, int microBatches)
    {
        var random = new Random(1000 + step);
        int count = microBatches * MicroBatch * model.Sequence;
        var tokens = new int[count];
        var targets = new int[count];
        for (int i = 0; i < count; i++)
        {
            tokens[i] = random.Next(model.Vocabulary);
            targets[i] = (3 * tokens[i] + 1) % model.Vocabulary;
        }
        return (tokens, targets);
    }

    public static float[] InitialWeights(ChainModel model)
    {
        var layout = model.FullLayout();
        var full = new float[layout.TotalElements];
        layout.Initialize<float>(full, Seed);
        // GPT-2's N(0, 0.02) would leave almost no signal after four GeLU blocks of width 8; N(0, 0.5) learns visibly.
        for (int i = 0; i < full.Length; i++) full[i] *= 25;
        return full;
    }

    /// <summary>
    /// One process, the whole model, gradient accumulation over all d·m micro-batches of each step; at
    /// <paramref name="zeroStage"/> 2 its gradients stream through the gradient pool (fp16 then rounds each micro-batch's
    /// gradient, not the accumulated one, so its overflow steps are ZeRO-2's own).
    /// </summary>
    public static ChainResult Reference(ChainModel model, int steps, int microBatches, double clip = 0.05, bool fp16 = false, int zeroStage = 0)
    {
        var partition = model.Partition(1, 1);
        StagePlan plan = partition.Stages[0];
        var config = Config(microBatches, zeroStage, clip, fp16);
        var program = new ChainStage(model, plan, TrainingEngine.CreateBackend(config, plan.Layout, plan.GradientPool, plan.ParameterPool), MicroBatch);
        InitialWeights(model).CopyTo(program.Parameters);
        var engine = TrainingEngine.Initialize(program, config);
        int perMicroBatch = MicroBatch * model.Sequence;
        var losses = new double[steps];
        var norms = new double[steps];
        for (int step = 0; step < steps; step++)
        {
            var (tokens, targets) = GlobalBatch(model, step, microBatches);
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
        return new ChainResult(losses, engine.ExportFullState().Master, norms, [], engine.LossScaler.SkippedSteps);
    }

    /// <summary>
    /// One rank of a pipeline job of <paramref name="pipeline"/> stages and tensor degree <paramref name="tensor"/>
    /// (the data degree is what the world size leaves). Returns the losses and the full weights gathered from the
    /// rank's replica.
    /// </summary>
    public static ChainResult Pipelined(ICommunicator world, ChainModel model, int pipeline, int tensor, int steps, int microBatches,
        int zeroStage = 0, Action<int, PipelineEngine>? beforeStep = null, double clip = 0.05, bool fp16 = false)
    {
        var partition = model.Partition(pipeline, tensor);
        using var groups = ParallelGroups.Create(world, partition);
        var plan = partition.Stages[groups.Coordinates.Stage];
        var config = Config(microBatches, zeroStage, clip, fp16);
        // ZeRO-2 streams gradients through the stage's gradient pool: the backend must be built for it.
        var stage = new ChainStage(model, plan, TrainingEngine.CreateBackend(config, plan.Layout, plan.GradientPool, plan.ParameterPool), MicroBatch);
        var layout = model.FullLayout();
        PartitionedParameters.Extract(layout, InitialWeights(model), plan, groups.Coordinates.TensorRank, stage.Parameters);
        var engine = new PipelineEngine(stage, config, groups);

        int data = groups.Topology.Data, replica = groups.Coordinates.DataRank, perReplica = engine.TokensPerBatch;
        var losses = new double[steps];
        var norms = new double[steps];
        var idle = new double[steps];
        for (int step = 0; step < steps; step++)
        {
            beforeStep?.Invoke(step, engine);
            var (tokens, targets) = GlobalBatch(model, step, data * microBatches);
            losses[step] = engine.TrainBatch(tokens.AsSpan(replica * perReplica, perReplica), targets.AsSpan(replica * perReplica, perReplica));
            norms[step] = engine.Engine.LastGradientNorm;
            idle[step] = engine.LastIdleFraction;
        }
        float[] local = engine.Engine.ExportFullState().Master; // this stage's whole local layout, from every data rank's partition
        return new ChainResult(losses, PartitionedParameters.Gather(groups.ModelParallel, partition, layout, local), norms, idle,
            engine.Engine.LossScaler.SkippedSteps);
    }

    /// <summary>‖a − b‖ / ‖b‖.</summary>
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
