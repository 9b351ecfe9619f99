using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Pipeline.Probe;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>A pipeline never hangs on a dead stage, and configurations it cannot run are refused by name.</summary>
[TestClass]
public sealed class PipelineFailureTests
{
    [TestMethod]
    public void ARankThatDiesMidBatchEndsEveryOtherRankWithAMessageNamingIt()
    {
        // p = 4, d = 1: world rank 3 (the last stage) dies before step 2; stage 2 waits on it, stages 1 and 0 on them.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.ThrowsExactly<AggregateException>(() => InProcessGroup.Run(4, world =>
            ChainTraining.Pipelined(world, new ChainModel(), pipeline: 4, tensor: 1, steps: 5, microBatches: 4, beforeStep: (step, _) =>
            {
                if (step == 2 && world.Rank == 3) throw new InvalidOperationException("world rank 3 crashed");
            }), TimeSpan.FromSeconds(60)));

        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}: a survivor waited for its deadline");
        var survivors = error.InnerExceptions.OfType<CommunicationException>().ToArray();
        Assert.AreEqual(3, survivors.Length, string.Join("\n", error.InnerExceptions.Select(e => e.Message)));
        foreach (var survivor in survivors)
        {
            Assert.AreEqual(3, survivor.MissingRank, survivor.Message);
            StringAssert.Contains(survivor.Message, "stage 3 (world rank 3)", "every survivor's message must name the dead rank");
        }
        var neighbour = survivors.Single(e => e.Message.StartsWith("pipeline stage 2 (world rank 2)", StringComparison.Ordinal));
        StringAssert.Contains(neighbour.Message, "stage 3 (world rank 3): ");
        StringAssert.Contains(neighbour.Message, "rank 3 left the group");
    }

    [TestMethod]
    public void AStageProgramForAnotherStageIsRefused()
    {
        var model = new ChainModel();
        var partition = model.Partition(2, 1);
        InProcessGroup.Run(2, world =>
        {
            using var groups = ParallelGroups.Create(world, partition);
            var wrong = new ChainStage(model, partition.Stages[1 - world.Rank], new CpuOps<float>(), ChainTraining.MicroBatch);
            var error = Assert.ThrowsExactly<ArgumentException>(() => new PipelineEngine(wrong, ChainTraining.Config(4), groups));
            StringAssert.Contains(error.Message, $"rank {world.Rank} is stage {world.Rank} of 2");
        }, TimeSpan.FromSeconds(30));
    }
}
