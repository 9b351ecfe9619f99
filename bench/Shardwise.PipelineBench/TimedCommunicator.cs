using System;
using System.Diagnostics;
using Shardwise.Distributed;

namespace Shardwise.PipelineBench;

/// <summary>
/// Passes every call to <paramref name="inner"/> and adds the time spent in sends and collectives to
/// <paramref name="clock"/>; groups split from it are timed into the same clock. <see cref="Shardwise.Training.Pipeline.PipelineEngine"/>
/// times its receives itself (its idle fraction); the rest of a stage's waiting happens here: in rendezvous sends,
/// and at the end of a batch in the all-reduces, where stages that finished their last backward wait for the first.
/// </summary>
internal sealed class TimedCommunicator(ICommunicator inner, BlockingClock clock, bool ownsInner) : ICommunicator
{
    public int Rank => inner.Rank;

    public int Size => inner.Size;

    public TimeSpan Timeout => inner.Timeout;

    public TrafficCounter Traffic => inner.Traffic;

    public void AllReduceSum(Span<float> data)
    {
        long start = Stopwatch.GetTimestamp();
        inner.AllReduceSum(data);
        clock.CollectiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public void AllReduceMax(Span<double> data)
    {
        long start = Stopwatch.GetTimestamp();
        inner.AllReduceMax(data);
        clock.CollectiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public void AllReduceSum(Span<double> data)
    {
        long start = Stopwatch.GetTimestamp();
        inner.AllReduceSum(data);
        clock.CollectiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        long start = Stopwatch.GetTimestamp();
        inner.ReduceScatterSum(input, output);
        clock.CollectiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public void AllGather(ReadOnlySpan<float> input, Span<float> output)
    {
        long start = Stopwatch.GetTimestamp();
        inner.AllGather(input, output);
        clock.CollectiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public void Broadcast(Span<float> data, int root)
    {
        long start = Stopwatch.GetTimestamp();
        inner.Broadcast(data, root);
        clock.CollectiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public void Barrier()
    {
        long start = Stopwatch.GetTimestamp();
        inner.Barrier();
        clock.CollectiveSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public void Send(ReadOnlySpan<float> data, int peer, int tag)
    {
        long start = Stopwatch.GetTimestamp();
        inner.Send(data, peer, tag);
        clock.SendSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>Not timed here: the engine times its receives (<c>LastReceiveSeconds</c>).</summary>
    public void Receive(Span<float> data, int peer, int tag) => inner.Receive(data, peer, tag);

    public ICommunicator Split(int color, int key) => new TimedCommunicator(inner.Split(color, key), clock, ownsInner: true);

    public void Dispose()
    {
        if (ownsInner) inner.Dispose();
    }
}
