using System;
using System.Collections.Generic;

namespace Shardwise.Distributed.MpiProbe;

/// <summary>
/// One rank of a test job: <c>mpirun -np N dotnet Shardwise.Distributed.MpiProbe.dll &lt;scenario&gt;</c>. Prints its
/// rank and process id first (the tests use the ids to check that no rank outlives the job), runs the scenario, and
/// exits 0 on success, 3 on a <see cref="CommunicationException"/>, 1 on any other failure; messages go to stderr.
/// </summary>
internal static class Program
{
    private static readonly Dictionary<string, Action<ICommunicator>> Scenarios = new(StringComparer.Ordinal)
    {
        ["collectives"] = CollectivesScenario.Run,
        ["split"] = SplitScenario.Run,
        ["split-kill"] = FailureScenarios.KillInSplit,
        ["kill"] = FailureScenarios.Kill,
        ["straggler"] = FailureScenarios.Straggler,
    };

    public static int Main(string[] args)
    {
        if (args.Length != 1 || !Scenarios.TryGetValue(args[0], out Action<ICommunicator>? scenario))
        {
            Report.ErrorLine($"usage: Shardwise.Distributed.MpiProbe <{string.Join("|", Scenarios.Keys)}>");
            return 2;
        }

        using ICommunicator comm = Communicators.Create();
        Report.Line($"probe rank {comm.Rank} of {comm.Size} pid {Environment.ProcessId} ({comm.GetType().Name})");
        try
        {
            CheckManagedFaultsStillWork();
            scenario(comm);
            Report.Line($"probe rank {comm.Rank}: {args[0]} ok");
            return 0;
        }
        catch (CommunicationException error)
        {
            Report.ErrorLine($"probe rank {comm.Rank}: {error.Message}");
            return 3;
        }
        catch (Exception error)
        {
            Report.ErrorLine($"probe rank {comm.Rank}: {error}");
            return 1;
        }
    }

    /// <summary>
    /// .NET turns SIGSEGV from a null dereference into NullReferenceException; MPI_Init must not have replaced that
    /// signal handler with its own (Open MPI only installs handlers where none exist).
    /// </summary>
    private static void CheckManagedFaultsStillWork()
    {
        try
        {
            object? nothing = Environment.GetEnvironmentVariable("SHARDWISE_PROBE_NEVER_SET");
            _ = nothing!.GetHashCode();
        }
        catch (NullReferenceException)
        {
            return;
        }
        throw new InvalidOperationException("a null dereference did not throw NullReferenceException");
    }
}
