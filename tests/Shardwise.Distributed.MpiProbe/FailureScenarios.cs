using System;
using System.Diagnostics;
using System.Threading;

namespace Shardwise.Distributed.MpiProbe;

/// <summary>Scenarios in which a rank stops taking part; the other ranks must not hang.</summary>
internal static class FailureScenarios
{
    /// <summary>All-reduces in a loop; rank 2 SIGKILLs itself (Process.Kill sends SIGKILL) before the fourth.</summary>
    public static void Kill(ICommunicator comm)
    {
        var data = new float[1024];
        for (int step = 0; step < 1000; step++)
        {
            if (step == 3 && comm.Rank == 2)
            {
                Report.Line("probe rank 2: killing itself (SIGKILL) before AllReduce step 3");
                Process.GetCurrentProcess().Kill();
                Thread.Sleep(Timeout.Infinite);
            }
            Array.Fill(data, comm.Rank + 1);
            comm.AllReduceSum(data);
        }
        throw new InvalidOperationException("the job finished although rank 2 died");
    }

    /// <summary>
    /// Like <see cref="Kill"/>, but on a sub-communicator: ranks pair up (0 with 2, 1 with 3) and all-reduce there;
    /// rank 2 dies, so rank 0 must fail on the pair group's deadline naming its peer (pair rank 1); the other pair finishes
    /// its loop and fails on the world barrier, naming rank 2.
    /// </summary>
    public static void KillInSplit(ICommunicator comm)
    {
        using ICommunicator pair = comm.Split(comm.Rank % 2, comm.Rank);
        var data = new float[64];
        for (int step = 0; step < 1000; step++)
        {
            if (step == 3 && comm.Rank == 2)
            {
                Report.Line("probe rank 2: killing itself (SIGKILL) before the pair AllReduce step 3");
                Process.GetCurrentProcess().Kill();
                Thread.Sleep(Timeout.Infinite);
            }
            pair.AllReduceSum(data);
        }
        // The other pair finishes its loop; the world barrier then names the dead rank there too (rather than leaving
        // them to MPI_Finalize, which waits for every process and would hang on the dead one).
        comm.Barrier();
        throw new InvalidOperationException("the job finished although rank 2 died");
    }

    /// <summary>
    /// Rank 1 stays alive but does not join the second all-reduce for three timeouts: its peers must time out and
    /// name rank 1 (it answers no heartbeat, being outside the communicator). Rank 1 then finds the others gave up.
    /// </summary>
    public static void Straggler(ICommunicator comm)
    {
        var data = new float[16];
        comm.AllReduceSum(data);
        if (comm.Rank == 1) Thread.Sleep(3 * comm.Timeout);
        comm.AllReduceSum(data);
        throw new InvalidOperationException("the second all-reduce completed although rank 1 was late");
    }
}
