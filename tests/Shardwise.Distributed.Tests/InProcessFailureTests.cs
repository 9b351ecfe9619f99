using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;

namespace Shardwise.Distributed.Tests;

/// <summary>No call waits forever: a rank that never arrives times out, a rank that dies fails its peers at once.</summary>
[TestClass]
public sealed class InProcessFailureTests
{
    [TestMethod]
    public void ARankThatNeverArrivesTimesOutNamingTheCollectiveAndTheRank()
    {
        TimeSpan timeout = TimeSpan.FromSeconds(1);
        InProcessCommunicator[] group = InProcessGroup.Create(3, timeout);
        var failures = new CommunicationException?[2];
        var elapsed = new TimeSpan[2];
        // Ranks 0 and 1 all-reduce; rank 2 stays a member (not disposed) but never calls.
        Thread[] threads = Enumerable.Range(0, 2).Select(rank => new Thread(() =>
        {
            var clock = Stopwatch.StartNew();
            try
            {
                group[rank].AllReduceSum(new float[8]);
            }
            catch (CommunicationException error)
            {
                failures[rank] = error;
            }
            elapsed[rank] = clock.Elapsed;
        })).ToArray();
        foreach (Thread thread in threads) thread.Start();
        foreach (Thread thread in threads) thread.Join();

        for (int rank = 0; rank < 2; rank++)
        {
            CommunicationException error = failures[rank] ?? throw new AssertFailedException($"rank {rank} did not fail");
            Assert.AreEqual(Collective.AllReduce, error.Collective);
            Assert.AreEqual(2, error.MissingRank);
            StringAssert.Contains(error.Message, "rank 2 did not join AllReduce within 1 s");
            Assert.IsTrue(elapsed[rank] >= timeout * 0.9, $"rank {rank} gave up early, after {elapsed[rank]}");
            Assert.IsTrue(elapsed[rank] < timeout * 2, $"rank {rank} gave up late, after {elapsed[rank]}");
        }

        // The group is broken: even the rank that never came now fails at once, with the same reason.
        var late = Assert.ThrowsExactly<CommunicationException>(() => group[2].AllReduceSum(new float[8]));
        Assert.AreEqual(2, late.MissingRank);
    }

    [TestMethod]
    public void ARankWhoseBodyThrowsMakesItsPeersFailFastNamingIt()
    {
        var clock = Stopwatch.StartNew();
        var error = Assert.ThrowsExactly<AggregateException>(() => InProcessGroup.Run(4, comm =>
        {
            if (comm.Rank == 2) throw new InvalidOperationException("rank 2 crashed");
            comm.AllReduceSum(new float[8]);
        }, TimeSpan.FromSeconds(60)));
        TimeSpan elapsed = clock.Elapsed;

        Assert.IsTrue(elapsed < TimeSpan.FromSeconds(10), $"peers waited {elapsed}, not failing fast");
        Assert.AreEqual(4, error.InnerExceptions.Count);
        Assert.IsInstanceOfType<InvalidOperationException>(error.InnerExceptions[0], "the cause comes first");
        StringAssert.Contains(error.Message, "the first was rank 2");
        foreach (CommunicationException peer in error.InnerExceptions.Skip(1).Cast<CommunicationException>())
        {
            Assert.AreEqual(2, peer.MissingRank);
            Assert.AreEqual(Collective.AllReduce, peer.Collective);
            StringAssert.Contains(peer.Message, "rank 2 left the group");
            StringAssert.Contains(peer.Message, "rank 2 crashed");
        }
    }

    [TestMethod]
    public void AbandoningARankWhilePeersWaitInACollectiveFailsThemAtOnce()
    {
        InProcessCommunicator[] group = InProcessGroup.Create(4, TimeSpan.FromSeconds(60));
        var failures = new Exception?[4];
        var elapsed = new TimeSpan[4];
        var threads = new Thread[4];
        for (int rank = 0; rank < 4; rank++)
        {
            if (rank == 1) continue;
            int r = rank;
            threads[r] = new Thread(() =>
            {
                var clock = Stopwatch.StartNew();
                try
                {
                    group[r].Broadcast(new float[4], root: 1);
                }
                catch (Exception error)
                {
                    failures[r] = error;
                }
                elapsed[r] = clock.Elapsed;
            });
            threads[r].Start();
        }

        Thread.Sleep(200); // the three are now waiting for rank 1
        group[1].Abandon("simulated crash");
        foreach (Thread? thread in threads) thread?.Join();

        foreach (int rank in new[] { 0, 2, 3 })
        {
            var error = (CommunicationException)(failures[rank] ?? throw new AssertFailedException($"rank {rank} did not fail"));
            Assert.AreEqual(1, error.MissingRank);
            Assert.AreEqual(Collective.Broadcast, error.Collective);
            StringAssert.Contains(error.Message, "rank 1 left the group before joining Broadcast (simulated crash)");
            Assert.IsTrue(elapsed[rank] < TimeSpan.FromSeconds(5), $"rank {rank} took {elapsed[rank]}");
        }
    }

    [TestMethod]
    public void ARankThatFinishesEarlyFailsPeersThatStillExpectIt()
    {
        var error = Assert.ThrowsExactly<AggregateException>(() => InProcessGroup.Run(3, comm =>
        {
            comm.Barrier();
            if (comm.Rank != 0) comm.AllGather(new float[2], new float[6]); // rank 0 returns, disposing its communicator
        }, TimeSpan.FromSeconds(60)));

        Assert.AreEqual(2, error.InnerExceptions.Count);
        foreach (CommunicationException peer in error.InnerExceptions.Cast<CommunicationException>())
        {
            Assert.AreEqual(0, peer.MissingRank);
            StringAssert.Contains(peer.Message, "rank 0 left the group before joining AllGather");
        }
    }

    [TestMethod]
    public void ReceivingFromARankThatLeftWithoutSendingFailsAtOnce()
    {
        InProcessCommunicator[] group = InProcessGroup.Create(2, TimeSpan.FromSeconds(60));
        group[1].Send(new float[3], peer: 0, tag: 4);
        group[1].Dispose();

        // A message sent before leaving is still delivered; a second one never comes.
        var received = new float[3];
        group[0].Receive(received, peer: 1, tag: 4);
        var clock = Stopwatch.StartNew();
        var error = Assert.ThrowsExactly<CommunicationException>(() => group[0].Receive(received, peer: 1, tag: 4));
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(5));
        Assert.AreEqual(Collective.Receive, error.Collective);
        Assert.AreEqual(1, error.MissingRank);
        StringAssert.Contains(error.Message, "rank 1 left the group");
    }

    [TestMethod]
    public void AReceiveWithNoMatchingSendTimesOutNamingThePeer()
    {
        InProcessCommunicator[] group = InProcessGroup.Create(2, TimeSpan.FromMilliseconds(300));
        var clock = Stopwatch.StartNew();
        var error = Assert.ThrowsExactly<CommunicationException>(() => group[1].Receive(new float[1], peer: 0, tag: 7));
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(0.6), $"took {clock.Elapsed}");
        Assert.AreEqual(0, error.MissingRank);
        StringAssert.Contains(error.Message, "rank 0 did not send the message tagged 7 within 0.3 s");
    }

    [TestMethod]
    public void RanksMakingDifferentCallsFailWithBothCallsNamed()
    {
        var error = Assert.ThrowsExactly<AggregateException>(() => InProcessGroup.Run(2, comm =>
        {
            if (comm.Rank == 0) comm.AllReduceSum(new float[4]);
            else comm.AllReduceSum(new float[5]);
        }, TimeSpan.FromSeconds(60)));

        var first = (CommunicationException)error.InnerExceptions[0];
        StringAssert.Contains(first.Message, "AllReduceSum(float[4])");
        StringAssert.Contains(first.Message, "AllReduceSum(float[5])");
    }

    [TestMethod]
    public void ACommunicatorCannotBeUsedAfterDispose()
    {
        InProcessCommunicator[] group = InProcessGroup.Create(1, TimeSpan.FromSeconds(1));
        group[0].Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => group[0].Barrier());
    }
}
