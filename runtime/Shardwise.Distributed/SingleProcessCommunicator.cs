using System;

namespace Shardwise.Distributed;

/// <summary>
/// A group of one rank: what a program gets when it was not launched by mpirun. Collectives are identities (the sum
/// over one rank is its own data), nothing moves, and there is no peer to send to.
/// </summary>
public sealed class SingleProcessCommunicator(TimeSpan timeout) : ICommunicator
{
    public SingleProcessCommunicator() : this(CommunicatorTimeout.Default)
    {
    }

    public int Rank => 0;

    public int Size => 1;

    public TimeSpan Timeout { get; } = timeout;

    public TrafficCounter Traffic { get; } = new();

    public void AllReduceSum(Span<float> data)
    {
    }

    public void AllReduceMax(Span<double> data)
    {
    }

    public void AllReduceSum(Span<double> data)
    {
    }

    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.ReduceScatter(input.Length, output.Length, Size);
        input.CopyTo(output);
    }

    public void AllGather(ReadOnlySpan<float> input, Span<float> output)
    {
        CollectiveArguments.AllGather(input.Length, output.Length, Size);
        input.CopyTo(output);
    }

    public void Broadcast(Span<float> data, int root) => CollectiveArguments.Root(root, Size);

    public void Send(ReadOnlySpan<float> data, int peer, int tag) => CollectiveArguments.Peer(peer, Rank, Size);

    public void Receive(Span<float> data, int peer, int tag) => CollectiveArguments.Peer(peer, Rank, Size);

    public void Barrier()
    {
    }

    /// <summary>The only possible sub-group of one rank is that rank again.</summary>
    public ICommunicator Split(int color, int key)
    {
        CollectiveArguments.Color(color);
        return new SingleProcessCommunicator(Timeout);
    }

    public void Dispose()
    {
    }
}
