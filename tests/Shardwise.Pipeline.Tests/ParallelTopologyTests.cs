using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Pipeline.Probe;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>The rank maps of data × pipeline × tensor parallelism (tensor fastest, then data, then pipeline) and the groups split from them.</summary>
[TestClass]
public sealed class ParallelTopologyTests
{
    [TestMethod]
    public void RanksAreOrderedTensorFastestThenDataThenPipeline()
    {
        // W = 16: d = 2, p = 4, t = 2 — worked out by hand for a few ranks.
        var topology = new ParallelTopology(16, pipeline: 4, tensor: 2);
        Assert.AreEqual(2, topology.Data);
        Assert.AreEqual(new RankCoordinates(0, 0, 0), topology.Coordinates(0));
        Assert.AreEqual(new RankCoordinates(0, 0, 1), topology.Coordinates(1));
        Assert.AreEqual(new RankCoordinates(0, 1, 0), topology.Coordinates(2));
        Assert.AreEqual(new RankCoordinates(1, 0, 0), topology.Coordinates(4));
        Assert.AreEqual(new RankCoordinates(3, 1, 1), topology.Coordinates(15));
        for (int rank = 0; rank < 16; rank++)
        {
            var (stage, data, tensor) = topology.Coordinates(rank);
            Assert.AreEqual(rank, topology.WorldRank(stage, data, tensor));
        }

        CollectionAssert.AreEqual(new[] { 10, 11 }, topology.TensorGroup(11));
        CollectionAssert.AreEqual(new[] { 9, 11 }, topology.DataGroup(11));
        CollectionAssert.AreEqual(new[] { 3, 7, 11, 15 }, topology.PipelineGroup(11));
        CollectionAssert.AreEqual(new[] { 2, 3, 6, 7, 10, 11, 14, 15 }, topology.ModelParallelGroup(11));
        CollectionAssert.AreEqual(new[] { 3, 15 }, topology.TiedGroup(11, [3, 0]));
    }

    [TestMethod]
    public void EveryRankIsInExactlyOneGroupOfEachKind()
    {
        var topology = new ParallelTopology(24, pipeline: 3, tensor: 2);
        foreach (Func<int, int[]> group in new Func<int, int[]>[] { topology.TensorGroup, topology.DataGroup, topology.PipelineGroup, topology.ModelParallelGroup })
        {
            var groups = Enumerable.Range(0, 24).Select(r => string.Join(",", group(r))).Distinct().ToArray();
            var members = groups.SelectMany(g => g.Split(',').Select(int.Parse)).OrderBy(r => r).ToArray();
            CollectionAssert.AreEqual(Enumerable.Range(0, 24).ToArray(), members, "the groups must partition the world");
            for (int rank = 0; rank < 24; rank++) CollectionAssert.Contains(group(rank), rank);
        }
    }

    [TestMethod]
    public void AWorldThatIsNotAMultipleOfPipelineTimesTensorIsRefusedNamingTheDegrees()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => new ParallelTopology(6, pipeline: 4, tensor: 1));
        StringAssert.Contains(error.Message, "the job has 6 ranks, but the model is planned for [Model(Pipeline = 4, Tensor = 1)]");
        StringAssert.Contains(error.Message, "multiple of Pipeline × Tensor = 4");
    }

    [TestMethod]
    public void SplitGroupsMatchTheRankMaps()
    {
        // p = 2, t = 2, d = 2 over 8 in-process ranks: each communicator's members, in its rank order, are the map's.
        var partition = new ChainModel().Partition(2, 2);
        var results = InProcessGroup.Run(8, world =>
        {
            using var groups = ParallelGroups.Create(world, partition);
            int[] Members(ICommunicator group)
            {
                var members = new float[group.Size];
                group.AllGather([world.Rank], members);
                return members.Select(m => (int)m).ToArray();
            }
            return (Tensor: Members(groups.Tensor), Data: Members(groups.Data), Pipe: Members(groups.Pipeline),
                Model: Members(groups.ModelParallel), Tied: groups.Tied.TryGetValue(ChainModel.Embedding, out var tied) ? Members(tied) : null);
        }, TimeSpan.FromSeconds(30));

        var topology = new ParallelTopology(8, 2, 2);
        for (int rank = 0; rank < 8; rank++)
        {
            CollectionAssert.AreEqual(topology.TensorGroup(rank), results[rank].Tensor);
            CollectionAssert.AreEqual(topology.DataGroup(rank), results[rank].Data);
            CollectionAssert.AreEqual(topology.PipelineGroup(rank), results[rank].Pipe);
            CollectionAssert.AreEqual(topology.ModelParallelGroup(rank), results[rank].Model);
            // Both stages hold the tied embedding here (the first and the last of two).
            CollectionAssert.AreEqual(topology.TiedGroup(rank, [0, 1]), results[rank].Tied);
        }
    }
}
