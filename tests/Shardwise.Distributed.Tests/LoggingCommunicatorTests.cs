using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;

namespace Shardwise.Distributed.Tests;

/// <summary>
/// The comms_logger's communicator: results equal the wrapped one's, every call is logged with DeepSpeed's name, the
/// message size DeepSpeed's logger gives it and its group's size (splits log into the same log), prof_ops filters, and
/// the summary's bandwidths follow from the sizes and latencies.
/// </summary>
[TestClass]
public sealed class LoggingCommunicatorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [TestMethod]
    public void EveryCallIsLoggedAndItsResultIsTheWrappedCommunicators()
    {
        var results = InProcessGroup.Run(3, world =>
        {
            var log = new CommsLog();
            var logged = new LoggingCommunicator(world, log);
            float[] sum = Enumerable.Range(0, 5).Select(i => (float)(world.Rank * 10 + i)).ToArray();
            logged.AllReduceSum(sum);
            double[] max = [world.Rank, -world.Rank];
            logged.AllReduceMax(max);
            var scattered = new float[4];
            logged.ReduceScatterSum(Enumerable.Range(0, 12).Select(i => (float)(i + world.Rank)).ToArray(), scattered);
            var gathered = new float[6];
            logged.AllGather([world.Rank, world.Rank + 0.5f], gathered);
            float[] broadcast = [world.Rank, 7];
            logged.Broadcast(broadcast, root: 2);
            if (world.Rank == 0) logged.Send([1, 2, 3], peer: 1, tag: 4);
            var received = new float[3];
            if (world.Rank == 1) logged.Receive(received, peer: 0, tag: 4);
            using (var pair = logged.Split(world.Rank == 2 ? 1 : 0, world.Rank))
            {
                float[] inPair = [1];
                pair.AllReduceSum(inPair);
            }
            logged.Barrier();
            return (Sum: sum, Max: max, Scattered: scattered, Gathered: gathered, Broadcast: broadcast, Received: received, Log: log);
        }, Timeout);

        CollectionAssert.AreEqual(new float[] { 30, 33, 36, 39, 42 }, results[0].Sum);
        CollectionAssert.AreEqual(new double[] { 2, 0 }, results[1].Max);
        CollectionAssert.AreEqual(new float[] { 15, 18, 21, 24 }, results[1].Scattered, "rank 1: Σ over ranks of input[4..8)");
        CollectionAssert.AreEqual(new float[] { 0, 0.5f, 1, 1.5f, 2, 2.5f }, results[2].Gathered);
        CollectionAssert.AreEqual(new float[] { 2, 7 }, results[0].Broadcast);
        CollectionAssert.AreEqual(new float[] { 1, 2, 3 }, results[1].Received);

        var rank1 = results[1].Log.Records;
        CollectionAssert.AreEqual(new[] { "all_reduce", "all_reduce", "reduce_scatter", "all_gather", "broadcast", "recv", "all_reduce", "barrier" },
            rank1.Select(r => r.Operation).ToArray());
        CollectionAssert.AreEqual(new long[] { 20, 16, 48, 24, 8, 12, 4, 0 }, rank1.Select(r => r.MessageBytes).ToArray(), "all_gather: its output; reduce_scatter: its input");
        CollectionAssert.AreEqual(new[] { 3, 3, 3, 3, 3, 3, 2, 3 }, rank1.Select(r => r.GroupSize).ToArray(), "the split's all_reduce ran in a group of 2");
        Assert.AreEqual("send", results[0].Log.Records.Single(r => r.Operation is "send" or "recv").Operation);
        Assert.IsTrue(rank1.All(r => r.Milliseconds >= 0));
    }

    [TestMethod]
    public void ProfOpsChoosesTheLoggedOperations()
    {
        var log = new CommsLog(["all_gather"]);
        var logged = new LoggingCommunicator(new SingleProcessCommunicator(), log);
        float[] data = [1, 2];
        logged.AllReduceSum(data);
        var gathered = new float[2];
        logged.AllGather(data, gathered);
        logged.Barrier();
        Assert.AreEqual("all_gather", log.Records.Single().Operation);
        CollectionAssert.AreEqual(data, gathered);
    }

    [TestMethod]
    public void TheSummaryGroupsByOperationAndSizeWithDeepSpeedsBandwidths()
    {
        var log = new CommsLog();
        // 1 MiB all-reduced over 4 ranks in 2 ms: algbw = 8·2^20 bits / 2 ms = 4.19 Gbps, busbw × 2·3/4 = 6.29.
        log.Add(new CommsRecord("all_reduce", 1 << 20, 2.0, 4));
        log.Add(new CommsRecord("all_reduce", 1 << 20, 2.0, 4));
        log.Add(new CommsRecord("all_gather", 4096, 0.5, 4));
        string summary = log.Summary();
        var lines = summary.Split('\n');
        Assert.AreEqual("all_reduce", lines[1]);
        StringAssert.StartsWith(lines[2].TrimStart(), "1.00 MB");
        CollectionAssert.AreEqual(new[] { "1.00", "MB", "2", "4.00", "2.000", "4.19", "6.29" }, lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        CollectionAssert.AreEqual(new[] { "4.00", "KB", "1", "0.50", "0.500", "0.07", "0.05" }, lines[4].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.AreEqual(1.5, CommsLog.BusFactor("all_reduce", 4));
        Assert.AreEqual(0.75, CommsLog.BusFactor("reduce_scatter", 4));
        Assert.AreEqual("", new CommsLog().Summary());

        var verbose = new StringWriter();
        new CommsLog(verbose: verbose).Add(new CommsRecord("broadcast", 64, 0.25, 2));
        StringAssert.Contains(verbose.ToString(), "comm op: broadcast | time (ms): 0.250 | msg size: 64 B");
    }
}
