using System;
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
        MpiJob job = MpiJob.Run(4, CommTimeout, TimeSpan.FromSeconds(60), ["kill", "4", "1"], "--mca", "orte_enable_recovery", "1");

        StringAssert.Contains(job.Output, "pipeline probe rank 3: killing itself", job.Output);
        foreach (int rank in new[] { 0, 1, 2 })
        {
            string? line = job.Output.Split('\n').FirstOrDefault(l => l.StartsWith($"pipeline probe rank {rank}: pipeline stage {rank}", StringComparison.Ordinal));
            Assert.IsNotNull(line, $"rank {rank} reported no failure:\n{job.Output}");
            Assert.IsTrue(line.Contains("rank 3 did not send", StringComparison.Ordinal) || line.Contains("Silent: rank 3 did not answer", StringComparison.Ordinal)
                || line.Contains("finding rank 3 missing", StringComparison.Ordinal), line);
        }
        Assert.IsTrue(job.Elapsed < TimeSpan.FromSeconds(30), $"took {job.Elapsed}");
    }
}
