using System;

namespace Shardwise.Distributed.InProcess;

/// <summary>
/// One rank of an in-process group (<see cref="InProcessGroup"/>): ranks are threads sharing memory. A collective has
/// two rendezvous passes: after the first every rank's input is deposited, so each rank computes its own result from
/// all deposits; after the second every rank has finished reading, so deposits may be overwritten by the next call.
/// Reductions add in rank order (((x₀ + x₁) + x₂) + …), so every rank gets bitwise identical results, and the same
/// results run after run. Traffic is counted as the ring algorithms would move it (<see cref="RingTraffic"/>).
/// </summary>
public sealed class InProcessCommunicator : ICommunicator
{
    private readonly GroupState _group;
    private readonly System.Collections.Generic.List<InProcessCommunicator> _children = [];
    private int _splits;
    private bool _gone;

    internal InProcessCommunicator(GroupState group, int rank)
    {
        _group = group;
        Rank = rank;
    }

    public int Rank { get; }

    public int Size => _group.Size;

    public TimeSpan Timeout => _group.Timeout;

    public TrafficCounter Traffic { get; } = new();

    public void AllReduceSum(Span<float> data)
    {
        Deposit().Set($"AllReduceSum(float[{data.Length}])", data);
        WaitForDeposits(Collective.AllReduce);
        SumInRankOrder(0, data);
        WaitForReaders(Collective.AllReduce);
        long bytes = RingTraffic.AllReduce(data.Length, Size) * sizeof(float);
        Traffic.Add(Collective.AllReduce, bytes, bytes);
    }

    public void AllReduceSum(Span<double> data)
    {
        Deposit().Set($"AllReduceSum(double[{data.Length}])", data);
        WaitForDeposits(Collective.AllReduce);
        _group.Contributions[0].Doubles.CopyTo(data);
        for (int rank = 1; rank < Size; rank++)
        {
            ReadOnlySpan<double> theirs = _group.Contributions[rank].Doubles;
            for (int i = 0; i < data.Length; i++) data[i] += theirs[i];
        }
        WaitForReaders(Collective.AllReduce);
        long bytes = RingTraffic.AllReduce(data.Length, Size) * sizeof(double);
        Traffic.Add(Collective.AllReduce, bytes, bytes);
    }

    public void AllReduceMax(Span<double> data)
    {
        Deposit().Set($"AllReduceMax(double[{data.Length}])", data);
        WaitForDeposits(Collective.AllReduce);
        _group.Contributions[0].Doubles.CopyTo(data);
        for (int rank = 1; rank < Size; rank++)
        {
            ReadOnlySpan<double> theirs = _group.Contributions[rank].Doubles;
            // Math.Max propagates NaN, which is what an overflow check over ranks needs.
            for (int i = 0; i < data.Length; i++) data[i] = Math.Max(data[i], theirs[i]);
        }
        WaitForReaders(Collective.AllReduce);
        long bytes = RingTraffic.AllReduce(data.Length, Size) * sizeof(double);
        Traffic.Add(Collective.AllReduce, bytes, bytes);
    }

    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.ReduceScatter(input.Length, output.Length, Size);
        Deposit().Set($"ReduceScatterSum(float[{input.Length}])", input);
        WaitForDeposits(Collective.ReduceScatter);
        SumInRankOrder(Rank * output.Length, output);
        WaitForReaders(Collective.ReduceScatter);
        long bytes = RingTraffic.ReduceScatter(output.Length, Size) * sizeof(float);
        Traffic.Add(Collective.ReduceScatter, bytes, bytes);
    }

    public void AllGather(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.AllGather(input.Length, output.Length, Size);
        Deposit().Set($"AllGather(float[{input.Length}])", input);
        WaitForDeposits(Collective.AllGather);
        for (int rank = 0; rank < Size; rank++)
            _group.Contributions[rank].Floats.CopyTo(output.Slice(rank * input.Length, input.Length));
        WaitForReaders(Collective.AllGather);
        long bytes = RingTraffic.AllGather(input.Length, Size) * sizeof(float);
        Traffic.Add(Collective.AllGather, bytes, bytes);
    }

    public void Broadcast(Span<float> data, int root)
    {
        CollectiveArguments.Root(root, Size);
        string signature = $"Broadcast(float[{data.Length}], root {root})";
        if (Rank == root) Deposit().Set(signature, data);
        else Deposit().Set(signature);
        WaitForDeposits(Collective.Broadcast);
        if (Rank != root) _group.Contributions[root].Floats.CopyTo(data);
        WaitForReaders(Collective.Broadcast);
        (long sent, long received) = RingTraffic.Broadcast(data.Length, Size, Rank == root);
        Traffic.Add(Collective.Broadcast, sent * sizeof(float), received * sizeof(float));
    }

    public void Send(ReadOnlySpan<float> data, int peer, int tag)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        CollectiveArguments.Tag(tag);
        ThrowIfGone();
        _group.Mailboxes.Send(Rank, peer, tag, data);
        Traffic.Add(Collective.Send, (long)data.Length * sizeof(float), 0);
    }

    public void Receive(Span<float> data, int peer, int tag)
    {
        CollectiveArguments.Peer(peer, Rank, Size);
        CollectiveArguments.Tag(tag);
        ThrowIfGone();
        _group.Mailboxes.Receive(Rank, peer, tag, data);
        Traffic.Add(Collective.Receive, 0, (long)data.Length * sizeof(float));
    }

    public void Barrier()
    {
        Deposit().Set("Barrier()");
        WaitForDeposits(Collective.Barrier);
        // The second pass keeps a fast rank from overwriting its signature before a slow one has compared it.
        WaitForReaders(Collective.Barrier);
    }

    /// <summary>
    /// Exchanges every rank's (color, key) over this group (an all-reduce of doubles: exact for any int), then joins
    /// the child group shared by the ranks of the same color. Children are found by (split number, color) in the parent
    /// group's state; every rank splits in the same order, so the numbers agree.
    /// </summary>
    public ICommunicator Split(int color, int key)
    {
        CollectiveArguments.Color(color);
        var exchange = new double[2 * Size];
        exchange[2 * Rank] = color;
        exchange[2 * Rank + 1] = key;
        AllReduceSum(exchange);
        var choices = new (int Color, int Key)[Size];
        for (int rank = 0; rank < Size; rank++) choices[rank] = ((int)exchange[2 * rank], (int)exchange[2 * rank + 1]);
        SplitMembership membership = SplitMembership.Of(choices, Rank);
        GroupState child = _group.Child(_splits++, color, membership.Size);
        var communicator = new InProcessCommunicator(child, membership.Rank);
        _children.Add(communicator);
        return communicator;
    }

    /// <summary>
    /// Simulates this rank dying: it leaves the group without finishing, and peers waiting on it (or calling a
    /// collective later) fail at once with a <see cref="CommunicationException"/> naming this rank.
    /// </summary>
    public void Abandon(string because = "it abandoned its communicator")
    {
        _gone = true;
        _group.Leave(Rank, because);
        // A dead rank is gone from every group it was split into: peers waiting there fail at once too.
        foreach (InProcessCommunicator child in _children) child.Abandon(because);
    }

    /// <summary>Leaves the group: peers that still expect this rank in a collective fail at once, naming it.</summary>
    public void Dispose()
    {
        if (_gone) return;
        _gone = true;
        _group.Leave(Rank, "it disposed its communicator");
        foreach (InProcessCommunicator child in _children) child.Dispose();
    }

    private Contribution Deposit()
    {
        ThrowIfGone();
        return _group.Contributions[Rank];
    }

    /// <summary>
    /// result = Σ over ranks of their deposits' elements [offset, offset + result.Length), added rank by rank: each
    /// element sees the same sequence of additions on every rank, hence the same bits.
    /// </summary>
    private void SumInRankOrder(int offset, Span<float> result)
    {
        _group.Contributions[0].Floats.Slice(offset, result.Length).CopyTo(result);
        for (int rank = 1; rank < Size; rank++)
        {
            ReadOnlySpan<float> theirs = _group.Contributions[rank].Floats.Slice(offset, result.Length);
            for (int i = 0; i < result.Length; i++) result[i] += theirs[i];
        }
    }

    /// <summary>First pass: every rank has deposited its input; checks that all ranks made the same call.</summary>
    private void WaitForDeposits(Collective collective)
    {
        lock (_group.Gate) _group.Rendezvous.Arrive(Rank, collective);
        // Safe to read peers' deposits now: none can write again before the second pass, which needs this rank.
        CheckSignatures(collective);
    }

    /// <summary>Second pass: every rank has finished reading the deposits, so the next call may overwrite them.</summary>
    private void WaitForReaders(Collective collective)
    {
        lock (_group.Gate) _group.Rendezvous.Arrive(Rank, collective);
    }

    private void CheckSignatures(Collective collective)
    {
        string mine = _group.Contributions[Rank].Signature;
        for (int rank = 0; rank < Size; rank++)
        {
            string theirs = _group.Contributions[rank].Signature;
            if (theirs == mine) continue;
            lock (_group.Gate)
            {
                throw _group.Break(Rank, collective, rank,
                    $"the ranks made different calls: rank {Rank} called {mine} but rank {rank} called {theirs}.");
            }
        }
    }

    private void ThrowIfGone() => ObjectDisposedException.ThrowIf(_gone, this);
}
