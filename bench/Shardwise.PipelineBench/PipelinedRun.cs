using Shardwise.Cpu;
using Shardwise.Distributed;
using Shardwise.Plans;
using Shardwise.Training.Pipeline;

namespace Shardwise.PipelineBench;

/// <summary>
/// This rank's stage of <typeparamref name="TModel"/> (one rank per stage: no data or tensor parallelism) trained by
/// <see cref="PipelineEngine"/> with 1F1B: warm-up steps, then timed steps. Every rank's mean step time, idle fraction
/// (the engine's seconds blocked in receives over its step seconds, summed over the timed steps) and whole waiting
/// share (receives, plus sends and collectives timed by <see cref="TimedCommunicator"/>) go to every rank.
/// </summary>
internal static class PipelinedRun<TModel> where TModel : IPartitionedModelDefinition
{
    public static BenchRow Run(ICommunicator world, BenchOptions options)
    {
        var clock = new BlockingClock();
        using var groups = ParallelGroups.Create(new TimedCommunicator(world, clock, ownsInner: false), TModel.Partition);
        int stageIndex = groups.Coordinates.Stage;
        var stage = TModel.CompileStage<float>(stageIndex, new CpuOps<float>(), options.MicroBatch);
        // Every rank initialises the whole model from the seed and keeps its part: the baseline's start.
        var full = new float[TModel.ParameterLayout.TotalElements];
        TModel.ParameterLayout.Initialize<float>(full, BenchBatches.Seed);
        PartitionedParameters.Extract(TModel.ParameterLayout, full, stage.Stage, groups.Coordinates.TensorRank, stage.Parameters);
        var engine = new PipelineEngine(stage, BenchBatches.Config(options.MicroBatch, options.MicroBatches), groups);

        var tokens = new int[engine.TokensPerBatch];
        var targets = new int[tokens.Length];
        double stepSeconds = 0, receiveSeconds = 0, otherWaitSeconds = 0, loss = 0;
        for (int step = 0; step < options.Warmup + options.Steps; step++)
        {
            BenchBatches.Fill(step, tokens, targets);
            double blockedBefore = clock.SendSeconds + clock.CollectiveSeconds;
            loss = engine.TrainBatch(tokens, targets);
            if (step < options.Warmup) continue;
            stepSeconds += engine.LastStepSeconds;
            receiveSeconds += engine.LastReceiveSeconds;
            otherWaitSeconds += clock.SendSeconds + clock.CollectiveSeconds - blockedBefore;
        }

        // Each stage fills its own slot of each quantity; the sum over ranks is every stage's numbers, on every rank.
        int stages = options.Stages;
        var measured = new double[3 * stages];
        measured[stageIndex] = stepSeconds / options.Steps * 1000;
        measured[stages + stageIndex] = receiveSeconds / stepSeconds;
        measured[2 * stages + stageIndex] = (receiveSeconds + otherWaitSeconds) / stepSeconds;
        world.AllReduceSum(measured);

        double meanMilliseconds = 0;
        for (int s = 0; s < stages; s++) meanMilliseconds += measured[s] / stages;
        return new BenchRow(stages, options.MicroBatches, options.MicroBatch, meanMilliseconds, measured[stages..(2 * stages)],
            measured[(2 * stages)..], loss);
    }
}
