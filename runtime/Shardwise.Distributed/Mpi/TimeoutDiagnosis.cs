using System;
using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Distributed.Mpi;

/// <summary>
/// Turns what the heartbeats found after a timed-out call into an honest message. MPI cannot say which rank a pending
/// nonblocking collective waits for; the heartbeats can: a peer that answered is alive inside the communicator, a
/// silent peer has died or is busy elsewhere. When every peer answered from the same call the missing rank cannot be
/// determined, and the message says so.
/// </summary>
internal static class TimeoutDiagnosis
{
    public static (int? MissingRank, string Reason) Explain(
        int rank, int size, RankActivity mine, TimeSpan timeout, TimeSpan grace, int? peer, int tag,
        IReadOnlyDictionary<int, RankActivity> answers, IReadOnlyList<GiveUpNotice> gaveUp)
    {
        var alive = new SortedDictionary<int, string>();
        foreach ((int r, RankActivity activity) in answers) alive[r] = $"rank {r} is in {activity}";
        foreach (GiveUpNotice notice in gaveUp) alive[notice.Rank] = $"rank {notice.Rank} gave up on {notice.Activity}";
        int[] silent = Enumerable.Range(0, size).Where(r => r != rank && !alive.ContainsKey(r)).ToArray();
        string timedOut = $"within {CommunicatorTimeout.Format(timeout)} (timed out)";
        string noAnswer = $"did not answer a heartbeat within {CommunicatorTimeout.Format(grace)}";
        string answered = alive.Count == 0 ? "" : $" Peers that answered: {string.Join("; ", alive.Values)}.";

        if (peer is { } p)
        {
            string what = mine.Call == Collective.Send
                ? $"receive the message tagged {tag} from rank {rank}"
                : $"send the message tagged {tag} to rank {rank}";
            return silent.Contains(p)
                ? (p, $"rank {p} did not {what} {timedOut} and {noAnswer}; it may have died (or be busy outside the " +
                    $"communicator).{answered}")
                : (p, $"rank {p} is alive but did not {what} {timedOut}.{answered}{SilentOthers(silent)}");
        }

        if (silent.Length > 0)
        {
            return (silent[0], $"{RankList.Describe(silent)} did not join {mine} {timedOut} and {noAnswer}; " +
                $"{(silent.Length == 1 ? "it" : "they")} may have died (or be busy outside the communicator).{answered}");
        }

        foreach ((int r, RankActivity activity) in answers.OrderBy(a => a.Key))
        {
            if (activity != mine)
                return (r, $"{mine} did not complete {timedOut}: every peer is alive, but rank {r} is in {activity} — " +
                    $"the ranks' calls do not match.{answered}");
        }

        return (null, $"{mine} did not complete {timedOut}: a peer did not arrive, but every peer answered a heartbeat " +
            $"and the missing rank could not be determined (ranks {string.Join(", ", alive.Keys)} answered).{answered}");
    }

    /// <summary>
    /// In a chain of point-to-point waits (a pipeline) the peer this rank waits for is often alive and waiting itself;
    /// the rank that broke the chain is then among the silent ones, so they are named too.
    /// </summary>
    private static string SilentOthers(int[] silent) => silent.Length == 0 ? "" :
        $" Silent: {RankList.Describe(silent)} did not answer a heartbeat; {(silent.Length == 1 ? "it" : "they")} may have died.";
}
