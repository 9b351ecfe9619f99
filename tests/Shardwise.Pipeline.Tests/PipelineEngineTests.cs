using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Distributed.InProcess;
using Shardwise.Pipeline.Probe;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>What a stage's engine sets up: one activation window per micro-batch in flight, counted in its memory report.</summary>
[TestClass]
public sealed class PipelineEngineTests
{
    [TestMethod]
    public void EachStageHoldsOneActivationWindowPerMicroBatchInFlight()
    {
        // 1F1B with p = 4, m = 4 keeps max(2, min(p − s, m)) micro-batches' activations on stage s: 4, 3, 2, 2.
        var model = new ChainModel();
        var partition = model.Partition(4, 1);
        var results = InProcessGroup.Run(4, world =>
        {
            using var groups = ParallelGroups.Create(world, partition);
            var stage = new ChainStage(model, partition.Stages[world.Rank], new CpuOps<float>(), ChainTraining.MicroBatch);
            var engine = new PipelineEngine(stage, ChainTraining.Config(4), groups);
            return (engine.ActivationWindows, Windowed: engine.Memory.Activations, One: engine.Engine.Memory.Activations);
        }, TimeSpan.FromSeconds(30));

        int[] expected = [4, 3, 2, 2];
        for (int stage = 0; stage < 4; stage++)
        {
            Assert.AreEqual(expected[stage], results[stage].ActivationWindows, $"stage {stage}");
            Assert.AreEqual(expected[stage] * results[stage].One, results[stage].Windowed, $"stage {stage}");
        }
    }
}
