using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;

namespace Shardwise.Distributed.Tests;

/// <summary>Split on the in-process and single-process communicators: membership, key order, isolation, failures.</summary>
[TestClass]
public sealed class InProcessSplitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [TestMethod]
    public void RanksOfOneColorFormAGroupOrderedByKey()
    {
        // Six ranks, colors rank mod 3, keys descending: color c holds world ranks c and c + 3, with c + 3 first.
        var results = InProcessGroup.Run(6, world =>
        {
            using ICommunicator group = world.Split(world.Rank % 3, -world.Rank);
            float[] data = [world.Rank];
            group.AllReduceSum(data);
            float[] gathered = new float[group.Size];
            group.AllGather([world.Rank], gathered);
            return (group.Rank, group.Size, Sum: data[0], Gathered: gathered);
        }, Timeout);

        for (int rank = 0; rank < 6; rank++)
        {
            Assert.AreEqual(2, results[rank].Size);
            Assert.AreEqual(rank < 3 ? 1 : 0, results[rank].Rank, $"world rank {rank}");
            Assert.AreEqual(2 * (rank % 3) + 3, results[rank].Sum);
            CollectionAssert.AreEqual(new float[] { rank % 3 + 3, rank % 3 }, results[rank].Gathered);
        }
    }

    [TestMethod]
    public void ChildrenCountTheirOwnTrafficAndSplitsCanNest()
    {
        var results = InProcessGroup.Run(4, world =>
        {
            ICommunicator half = world.Split(world.Rank / 2, world.Rank);
            world.Traffic.Reset();
            half.Traffic.Reset();
            half.AllReduceSum(new float[100]);
            long halfBytes = half.Traffic.Sent(Collective.AllReduce);
            ICommunicator single = half.Split(half.Rank, 0);
            single.AllReduceSum(new float[10]);
            return (World: world.Traffic.TotalSent, Half: halfBytes, single.Size);
        }, Timeout);

        foreach (var result in results)
        {
            Assert.AreEqual(0, result.World, "calls on a child must not count on the parent");
            Assert.AreEqual(RingTraffic.AllReduce(100, 2) * sizeof(float), result.Half);
            Assert.AreEqual(1, result.Size);
        }
    }

    [TestMethod]
    public void ARankThatDiesFailsItsPeersInEveryChildAtOnceNamingIt()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.ThrowsExactly<AggregateException>(() => InProcessGroup.Run(4, world =>
        {
            ICommunicator pair = world.Split(world.Rank % 2, world.Rank); // {0, 2} and {1, 3}
            if (world.Rank == 2) throw new InvalidOperationException("rank 2 crashed");
            pair.AllReduceSum(new float[4]);
        }, TimeSpan.FromSeconds(30)));

        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}: the peer waited for its deadline");
        var peer = error.InnerExceptions.OfType<CommunicationException>().Single();
        Assert.AreEqual(1, peer.MissingRank, "world rank 2 is rank 1 of the pair {0, 2}");
        StringAssert.Contains(peer.Message, "rank 1 left the group before joining AllReduce (its thread failed: InvalidOperationException: rank 2 crashed)");
    }

    [TestMethod]
    public void ANegativeColorIsRefusedBeforeAnyPeerIsInvolved()
    {
        using var single = new SingleProcessCommunicator();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => single.Split(-1, 0));
        using ICommunicator child = single.Split(5, 3);
        Assert.AreEqual(1, child.Size);
        Assert.AreEqual(single.Timeout, child.Timeout);
    }
}
