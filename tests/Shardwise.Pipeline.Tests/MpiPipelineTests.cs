using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// The pipeline over real processes: mpirun -np 4 runs the chain model as p × t × d = 4 and every rank compares its loss
/// curve and gathered weights with the one-process run (relative &lt; 1e-5). Inconclusive only where mpirun is missing.
/// </summary>
[TestClass]
public sealed class MpiPipelineTests
{
    private static readonly TimeSpan CommTimeout = TimeSpan.FromSeconds(4);

    [TestMethod]
    [DataRow(4, 1)] // four stages
    [DataRow(2, 1)] // two stages × two data replicas
    [DataRow(2, 2)] // two stages × two tensor ranks
    public void PipelinedJobEqualsOneProcessOnEveryRank(int pipeline, int tensor)
    {
        MpiJob job = MpiJob.Run(4, CommTimeout, TimeSpan.FromSeconds(120), ["train", pipeline.ToString(), tensor.ToString()]);

        Assert.AreEqual(0, job.ExitCode, job.Output);
        for (int rank = 0; rank < 4; rank++) StringAssert.Contains(job.Output, $"pipeline probe rank {rank}: train ok", job.Output);
        StringAssert.Contains(job.Output, "(MpiCommunicator)");
    }

    [TestMethod]
    public void AKilledStageMakesEverySurvivorExitNamingIt()
    {
        // With recovery on, mpirun lets the survivors run: their own deadlines must end them, each naming stage 3
        // (world rank 3) — the neighbour as the silent peer it waited for, the others among the silent ranks.
        string reports = Path.Combine(Path.GetTempPath(), $"shardwise-pipeline-kill-{Guid.NewGuid():N}");
        Directory.CreateDirectory(reports);
        try
        {
            MpiJob job = MpiJob.Run("Shardwise.Pipeline.Probe.dll", 4, CommTimeout, TimeSpan.FromSeconds(60), ["kill", "4", "1"],
                new Dictionary<string, string> { ["SHARDWISE_PROBE_REPORTS"] = reports }, "--mca", "orte_enable_recovery", "1");

            StringAssert.Contains(job.Output, "pipeline probe rank 3: killing itself", job.Output);
            foreach (int rank in new[] { 0, 1, 2 })
            {
                string report = Path.Combine(reports, $"rank-{rank}.txt");
                Assert.IsTrue(File.Exists(report), $"rank {rank} reported no failure:\n{job.Output}");
                string message = File.ReadAllText(report);
                StringAssert.StartsWith(message, $"pipeline stage {rank} (world rank {rank}) failed ");
                // The neighbour names it as the silent peer it waited for; the others list it among the silent ranks
                // (or heard from a rank that gave up finding it missing).
                Assert.IsTrue(message.Contains("rank 3 did not send", StringComparison.Ordinal) || message.Contains("Silent: rank 3 did not answer", StringComparison.Ordinal)
                    || message.Contains("finding rank 3 missing", StringComparison.Ordinal), message);
            }
            Assert.IsTrue(job.Elapsed < TimeSpan.FromSeconds(30), $"took {job.Elapsed}");
        }
        finally
        {
            Directory.Delete(reports, recursive: true);
        }
    }
}
