using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Distributed.InProcess;

/// <summary>
/// A reusable barrier with a deadline. Each pass ends when every rank has arrived (the generation advances); a waiter
/// gives up at once when a rank that has not arrived leaves the group, or at its deadline, naming the ranks that did
/// not arrive. Either way the group breaks, so the ranks still waiting fail fast with the same reason.
/// </summary>
internal sealed class Rendezvous(GroupState group)
{
    private readonly bool[] _arrived = new bool[group.Size];
    private int _arrivedCount;
    private long _generation;

    /// <summary>Arrives for <paramref name="collective"/> and waits for the others. Caller holds the group's gate.</summary>
    public void Arrive(int rank, Collective collective)
    {
        group.ThrowIfBroken(rank, collective);
        long generation = _generation;
        _arrived[rank] = true;
        if (++_arrivedCount == group.Size)
        {
            Advance();
            return;
        }

        long deadline = group.Deadline();
        // The generation is checked first: a pass that completed counts even if a peer left right after it.
        while (_generation == generation)
        {
            group.ThrowIfBroken(rank, collective);
            int[] missing = Missing();
            foreach (int peer in missing)
            {
                if (group.LeftBecause(peer) is { } because)
                    throw group.Break(rank, collective, peer,
                        $"rank {peer} left the group before joining {collective} ({because}).");
            }

            if (!group.WaitForChange(deadline))
            {
                throw group.Break(rank, collective, missing[0],
                    $"{RankList.Describe(missing)} did not join {collective} within " +
                    $"{CommunicatorTimeout.Format(group.Timeout)} (timed out; {RankList.Describe(Arrived())} " +
                    $"{(Arrived().Length == 1 ? "was" : "were")} waiting); {(missing.Length == 1 ? "it" : "they")} " +
                    "may have died or be stuck.");
            }
        }
    }

    private void Advance()
    {
        System.Array.Clear(_arrived);
        _arrivedCount = 0;
        _generation++;
        System.Threading.Monitor.PulseAll(group.Gate);
    }

    private int[] Missing() => Enumerable.Range(0, group.Size).Where(r => !_arrived[r]).ToArray();

    private int[] Arrived() => Enumerable.Range(0, group.Size).Where(r => _arrived[r]).ToArray();
}
