using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;

namespace Shardwise.Distributed.Tests;

/// <summary>Traffic equals what the ring algorithms move: checked against the formulas and against worked numbers.</summary>
[TestClass]
public sealed class TrafficTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [TestMethod]
    public void FormulasGiveTheWorkedNumbers()
    {
        // 4 ranks, 1000 elements: each rank's ring pass moves 3 of 4 chunks of 250.
        Assert.AreEqual(1500L, RingTraffic.AllReduce(1000, 4));
        Assert.AreEqual(750L, RingTraffic.ReduceScatter(250, 4));
        Assert.AreEqual(750L, RingTraffic.AllGather(250, 4));
        Assert.AreEqual((1000L, 0L), RingTraffic.Broadcast(1000, 4, isRoot: true));
        Assert.AreEqual((0L, 1000L), RingTraffic.Broadcast(1000, 4, isRoot: false));
        // 10 elements over 3 ranks: 10·2/3 = 6 (rounded down) per pass.
        Assert.AreEqual(12L, RingTraffic.AllReduce(10, 3));
        // One rank moves nothing.
        Assert.AreEqual(0L, RingTraffic.AllReduce(1000, 1));
        Assert.AreEqual((0L, 0L), RingTraffic.Broadcast(1000, 1, isRoot: true));
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void EachCollectiveCountsTheRingFormula(int size)
    {
        const int n = 1000, root = 0;
        TrafficCounter[] counters = InProcessGroup.Run(size, comm =>
        {
            comm.AllReduceSum(new float[n]);
            comm.AllReduceSum(new double[n]);
            comm.AllReduceMax(new double[n]);
            comm.ReduceScatterSum(new float[n * size], new float[n]);
            comm.AllGather(new float[n], new float[n * size]);
            comm.Broadcast(new float[n], root);
            comm.Barrier();
            if (size > 1)
            {
                if (comm.Rank == 0) comm.Send(new float[n], 1, 0);
                if (comm.Rank == 1) comm.Receive(new float[n], 0, 0);
            }
            return comm.Traffic;
        }, Timeout);

        for (int rank = 0; rank < size; rank++)
        {
            TrafficCounter traffic = counters[rank];
            long allReduce = RingTraffic.AllReduce(n, size) * (4 + 8 + 8);
            Assert.AreEqual(allReduce, traffic.Sent(Collective.AllReduce), $"rank {rank} AllReduce sent");
            Assert.AreEqual(allReduce, traffic.Received(Collective.AllReduce), $"rank {rank} AllReduce received");
            Assert.AreEqual(4L * n * (size - 1), traffic.Sent(Collective.ReduceScatter), $"rank {rank}");
            Assert.AreEqual(4L * n * (size - 1), traffic.Received(Collective.ReduceScatter), $"rank {rank}");
            Assert.AreEqual(4L * n * (size - 1), traffic.Sent(Collective.AllGather), $"rank {rank}");
            Assert.AreEqual(4L * n * (size - 1), traffic.Received(Collective.AllGather), $"rank {rank}");
            bool sender = size > 1 && rank == root;
            Assert.AreEqual(sender ? 4L * n : 0, traffic.Sent(Collective.Broadcast), $"rank {rank} Broadcast sent");
            Assert.AreEqual(size > 1 && !sender ? 4L * n : 0, traffic.Received(Collective.Broadcast), $"rank {rank}");
            Assert.AreEqual(0L, traffic.Sent(Collective.Barrier) + traffic.Received(Collective.Barrier));
            Assert.AreEqual(size > 1 && rank == 0 ? 4L * n : 0, traffic.Sent(Collective.Send), $"rank {rank} Send");
            Assert.AreEqual(size > 1 && rank == 1 ? 4L * n : 0, traffic.Received(Collective.Receive), $"rank {rank}");
        }

        if (size == 4)
        {
            // Worked numbers for 4 ranks: all-reduce 2·750 elements per type; shards 3·1000 floats.
            Assert.AreEqual(1500L * 4 + 1500L * 8 * 2, counters[2].Sent(Collective.AllReduce));
            Assert.AreEqual(12_000L, counters[2].Received(Collective.ReduceScatter));
        }
    }

    [TestMethod]
    public void ResetClearsTheCounts()
    {
        InProcessGroup.Run(2, comm =>
        {
            comm.AllReduceSum(new float[10]);
            Assert.AreNotEqual(0L, comm.Traffic.TotalSent);
            comm.Traffic.Reset();
            Assert.AreEqual(0L, comm.Traffic.TotalSent + comm.Traffic.TotalReceived);
        }, Timeout);
    }
}
