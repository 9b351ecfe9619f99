using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Distributed.Tests;

/// <summary>
/// MpiCommunicator in real mpirun jobs of the probe. Skipped (inconclusive) only where mpirun is not installed.
/// </summary>
[TestClass]
public sealed class MpiProbeTests
{
    private static readonly TimeSpan CommTimeout = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan FailureLimit = TimeSpan.FromSeconds(30);

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void EveryCollectiveMatchesTheReferenceOnEveryRank(int ranks)
    {
        MpiJob job = MpiJob.Run(ranks, "collectives", CommTimeout, TimeSpan.FromSeconds(120));

        Assert.AreEqual(0, job.ExitCode, job.Output);
        Assert.AreEqual(ranks, job.RankProcessIds.Count, job.Output);
        for (int rank = 0; rank < ranks; rank++)
        {
            StringAssert.Contains(job.Output, $"probe rank {rank} of {ranks} pid", job.Output);
            StringAssert.Contains(job.Output, $"probe rank {rank}: collectives ok", job.Output);
        }
        StringAssert.Contains(job.Output, "(MpiCommunicator)");
    }

    [TestMethod]
    public void ARankKilledMidRunEndsTheWholeJobNamingIt()
    {
        // Open MPI's default: mpirun sees rank 2 die (SIGKILL) and kills the other ranks itself.
        MpiJob job = MpiJob.Run(4, "kill", CommTimeout, FailureLimit);

        AssertNoRankOutlivesTheJob(job, 4);
        Assert.AreNotEqual(0, job.ExitCode, job.Output);
        StringAssert.Contains(job.Output, "rank 2", job.Output);
        StringAssert.Contains(job.Output, "probe rank 2: killing itself", job.Output);
    }

    [TestMethod]
    public void WhenMpirunLetsTheSurvivorsRunTheyTimeOutNamingTheDeadRank()
    {
        // With recovery enabled mpirun does not kill the job when a rank dies, so the survivors' own deadline and
        // heartbeat diagnosis must end it: each names rank 2 and exits 3.
        MpiJob job = MpiJob.Run(4, "kill", CommTimeout, FailureLimit, "--mca", "orte_enable_recovery", "1");

        AssertNoRankOutlivesTheJob(job, 4);
        foreach (int rank in new[] { 0, 1, 3 })
        {
            // Each survivor either timed out itself or heard first from one that did; both name rank 2.
            string prefix = $"probe rank {rank}: AllReduce on rank {rank} failed: ";
            string? line = job.Output.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            Assert.IsNotNull(line, $"rank {rank} reported no failure:\n{job.Output}");
            Assert.IsTrue(line.Contains("rank 2 did not join AllReduce #4 within 4 s", StringComparison.Ordinal)
                || line.Contains("finding rank 2 missing", StringComparison.Ordinal), line);
        }
        StringAssert.Contains(job.Output, "rank 2 did not join AllReduce #4 within 4 s (timed out) and did not answer a heartbeat");
        Assert.IsTrue(job.Elapsed < CommTimeout * 3, $"took {job.Elapsed}");
    }

    [TestMethod]
    [DataRow(3)]
    [DataRow(4)]
    public void SplitGroupsHaveTheirOwnRanksCollectivesAndTraffic(int ranks)
    {
        MpiJob job = MpiJob.Run(ranks, "split", CommTimeout, TimeSpan.FromSeconds(120));

        Assert.AreEqual(0, job.ExitCode, job.Output);
        for (int rank = 0; rank < ranks; rank++) StringAssert.Contains(job.Output, $"probe rank {rank}: split ok", job.Output);
    }

    [TestMethod]
    public void ARankDeadInASplitGroupIsNamedByItsPeerThere()
    {
        // With recovery on, mpirun lets the survivors run: rank 0 must end on its pair group's deadline, naming the
        // dead peer by its rank in that group (1), not hang.
        MpiJob job = MpiJob.Run(4, "split-kill", CommTimeout, FailureLimit, "--mca", "orte_enable_recovery", "1");

        AssertNoRankOutlivesTheJob(job, 4);
        StringAssert.Contains(job.Output, "probe rank 1: Barrier on rank 1 failed: ", job.Output);
        StringAssert.Contains(job.Output, "probe rank 0: AllReduce on rank 0 failed: rank 1 did not join AllReduce #4 within 4 s (timed out)", job.Output);
    }

    [TestMethod]
    public void ARankThatDoesNotJoinIsNamedByItsPeersAfterTheTimeout()
    {
        MpiJob job = MpiJob.Run(3, "straggler", CommTimeout, FailureLimit);

        AssertNoRankOutlivesTheJob(job, 3);
        Assert.AreNotEqual(0, job.ExitCode, job.Output);
        StringAssert.Contains(job.Output, "rank 1 did not join AllReduce #2 within 4 s (timed out) and did not answer a heartbeat", job.Output);
    }

    private static void AssertNoRankOutlivesTheJob(MpiJob job, int ranks)
    {
        Assert.AreEqual(ranks, job.RankProcessIds.Count, $"every rank should have started:\n{job.Output}");
        Assert.IsTrue(job.Elapsed < FailureLimit, $"the job took {job.Elapsed}");
        // mpirun may exit a moment before the ranks it signalled are gone; they must all be gone within the limit.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int[] alive = job.RankProcessIds.Where(MpiJob.IsRunning).ToArray();
        while (alive.Length > 0 && job.Elapsed + clock.Elapsed < FailureLimit)
        {
            System.Threading.Thread.Sleep(50);
            alive = alive.Where(MpiJob.IsRunning).ToArray();
        }
        Assert.AreEqual(0, alive.Length,
            $"rank processes still running {FailureLimit} after the job started: {string.Join(", ", alive)}");
    }
}
