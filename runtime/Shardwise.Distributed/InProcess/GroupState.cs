using System;
using System.Diagnostics;
using System.Threading;

namespace Shardwise.Distributed.InProcess;

/// <summary>
/// What the ranks of one in-process group share: a single lock (<see cref="Gate"/>) that every wait uses, which ranks
/// have left, and whether the group is broken. One lock keeps the waiting logic simple: any change (an arrival, a
/// message, a departure, a failure) pulses every waiter, which then re-checks its own condition.
/// </summary>
internal sealed class GroupState
{
    private readonly string?[] _leftBecause;
    private readonly System.Collections.Generic.Dictionary<(int Split, int Color), (GroupState Group, int Joined)> _children = [];
    private string? _brokenBecause;
    private int? _brokenMissingRank;

    public GroupState(int size, TimeSpan timeout)
    {
        Size = size;
        Timeout = timeout;
        _leftBecause = new string?[size];
        Contributions = new Contribution[size];
        for (int rank = 0; rank < size; rank++) Contributions[rank] = new Contribution();
        Rendezvous = new Rendezvous(this);
        Mailboxes = new Mailboxes(this);
    }

    public object Gate { get; } = new();

    public int Size { get; }

    public TimeSpan Timeout { get; }

    /// <summary>Each rank's deposit for the collective in progress (written by its owner, read by all after arrival).</summary>
    public Contribution[] Contributions { get; }

    public Rendezvous Rendezvous { get; }

    public Mailboxes Mailboxes { get; }

    public long Deadline() => Distributed.Deadline.After(Timeout);

    /// <summary>
    /// The state of the group that split number <paramref name="split"/> made for <paramref name="color"/>: created by
    /// the first of its members to ask, forgotten once all <paramref name="size"/> have joined.
    /// </summary>
    public GroupState Child(int split, int color, int size)
    {
        lock (Gate)
        {
            if (!_children.TryGetValue((split, color), out var entry)) entry = (new GroupState(size, Timeout), 0);
            entry.Joined++;
            if (entry.Joined == size) _children.Remove((split, color));
            else _children[(split, color)] = entry;
            return entry.Group;
        }
    }

    /// <summary>Why <paramref name="rank"/> left (disposed or abandoned its communicator), or null while it is a member.
    /// Caller holds <see cref="Gate"/>.</summary>
    public string? LeftBecause(int rank) => _leftBecause[rank];

    /// <summary>A rank is gone: its peers' waits involving it fail at once instead of at their deadline.</summary>
    public void Leave(int rank, string because)
    {
        lock (Gate)
        {
            _leftBecause[rank] ??= because;
            Monitor.PulseAll(Gate);
        }
    }

    /// <summary>
    /// Marks the group unusable and returns the exception for the rank that found the problem. Every later or waiting
    /// call on any rank throws with the same reason, like a communicator abort: after a failed collective the ranks'
    /// states disagree, so carrying on could only produce wrong numbers. Caller holds <see cref="Gate"/>.
    /// </summary>
    public CommunicationException Break(int rank, Collective collective, int? missingRank, string reason)
    {
        if (_brokenBecause is null)
        {
            _brokenBecause = reason;
            _brokenMissingRank = missingRank;
            Monitor.PulseAll(Gate);
        }
        return Failure(rank, collective, missingRank, reason);
    }

    /// <summary>Throws when the group is broken. Caller holds <see cref="Gate"/>.</summary>
    public void ThrowIfBroken(int rank, Collective collective)
    {
        if (_brokenBecause is not null) throw Failure(rank, collective, _brokenMissingRank, _brokenBecause);
    }

    /// <summary>Waits on <see cref="Gate"/> until pulsed or the deadline; false once the deadline has passed.</summary>
    public bool WaitForChange(long deadline)
    {
        long remaining = deadline - Stopwatch.GetTimestamp();
        if (remaining <= 0) return false;
        int milliseconds = (int)Math.Min(int.MaxValue, (double)remaining * 1000 / Stopwatch.Frequency + 1);
        Monitor.Wait(Gate, milliseconds);
        return true;
    }

    private static CommunicationException Failure(int rank, Collective collective, int? missingRank, string reason) =>
        new(collective, missingRank, $"{collective} on rank {rank} failed: {reason}");
}
