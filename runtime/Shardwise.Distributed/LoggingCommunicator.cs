using System;
using System.Diagnostics;

namespace Shardwise.Distributed;

/// <summary>
/// A communicator that times every call of the one it wraps into a <see cref="CommsLog"/> (DeepSpeed's comms_logger);
/// groups split from it log into the same log. Results and errors are the wrapped communicator's.
/// </summary>
public sealed class LoggingCommunicator : ICommunicator
{
    private readonly ICommunicator _inner;
    private readonly CommsLog _log;

    public LoggingCommunicator(ICommunicator inner, CommsLog log)
    {
        _inner = inner;
        _log = log;
    }

    public int Rank => _inner.Rank;

    public int Size => _inner.Size;

    public TimeSpan Timeout => _inner.Timeout;

    public TrafficCounter Traffic => _inner.Traffic;

    public void AllReduceSum(Span<float> data)
    {
        long started = Start("all_reduce");
        _inner.AllReduceSum(data);
        Stop("all_reduce", started, (long)data.Length * sizeof(float));
    }

    public void AllReduceMax(Span<double> data)
    {
        long started = Start("all_reduce");
        _inner.AllReduceMax(data);
        Stop("all_reduce", started, (long)data.Length * sizeof(double));
    }

    public void AllReduceSum(Span<double> data)
    {
        long started = Start("all_reduce");
        _inner.AllReduceSum(data);
        Stop("all_reduce", started, (long)data.Length * sizeof(double));
    }

    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        long started = Start("reduce_scatter");
        _inner.ReduceScatterSum(input, output);
        Stop("reduce_scatter", started, (long)input.Length * sizeof(float));
    }

    public void AllGather(ReadOnlySpan<float> input, Span<float> output)
    {
        long started = Start("all_gather");
        _inner.AllGather(input, output);
        Stop("all_gather", started, (long)output.Length * sizeof(float));
    }

    public void Broadcast(Span<float> data, int root)
    {
        long started = Start("broadcast");
        _inner.Broadcast(data, root);
        Stop("broadcast", started, (long)data.Length * sizeof(float));
    }

    public void Send(ReadOnlySpan<float> data, int peer, int tag)
    {
        long started = Start("send");
        _inner.Send(data, peer, tag);
        Stop("send", started, (long)data.Length * sizeof(float));
    }

    public void Receive(Span<float> data, int peer, int tag)
    {
        long started = Start("recv");
        _inner.Receive(data, peer, tag);
        Stop("recv", started, (long)data.Length * sizeof(float));
    }

    public void Barrier()
    {
        long started = Start("barrier");
        _inner.Barrier();
        Stop("barrier", started, 0);
    }

    public ICommunicator Split(int color, int key) => new LoggingCommunicator(_inner.Split(color, key), _log);

    /// <summary>Disposes the wrapped communicator (the owner of a wrapper owns what it wraps).</summary>
    public void Dispose() => _inner.Dispose();

    private long Start(string operation) => _log.Wants(operation) ? Stopwatch.GetTimestamp() : 0;

    private void Stop(string operation, long started, long bytes)
    {
        if (started == 0) return;
        _log.Add(new CommsRecord(operation, bytes, Stopwatch.GetElapsedTime(started).TotalMilliseconds, _inner.Size));
    }
}
