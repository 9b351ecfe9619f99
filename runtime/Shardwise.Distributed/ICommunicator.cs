using System;

namespace Shardwise.Distributed;

/// <summary>Which collective or transfer a byte count or an error belongs to.</summary>
public enum Collective
{
    AllReduce,
    ReduceScatter,
    AllGather,
    Broadcast,
    Send,
    Receive,
    Barrier,
}

/// <summary>
/// The communication layer every parallel feature uses (data parallelism, ZeRO, pipelines): one group of
/// <see cref="Size"/> ranks. Implementations: in-process (ranks as threads, for tests) and MPI (ranks as
/// processes started by <c>mpirun</c>); NCCL later. Every call has a deadline (<see cref="Timeout"/>): a collective
/// that times out or finds a peer gone throws <see cref="CommunicationException"/> naming the collective and the rank.
/// All buffers are float32 unless stated; counts are elements. Every rank must make the same calls in the same order.
/// </summary>
public interface ICommunicator : IDisposable
{
    int Rank { get; }

    int Size { get; }

    /// <summary>How long one call may wait for its peers.</summary>
    TimeSpan Timeout { get; }

    /// <summary>Bytes this rank sent and received, by collective, since the last <see cref="TrafficCounter.Reset"/>.</summary>
    TrafficCounter Traffic { get; }

    /// <summary>data = Σ over ranks of data, in place, on every rank.</summary>
    void AllReduceSum(Span<float> data);

    /// <summary>Element-wise max over ranks, in place (overflow flags, for instance).</summary>
    void AllReduceMax(Span<double> data);

    /// <summary>Element-wise sum over ranks of doubles, in place (norms, losses).</summary>
    void AllReduceSum(Span<double> data);

    /// <summary>
    /// input has Size × output.Length elements; rank r receives Σ over ranks of input[r·n .. (r+1)·n) in output.
    /// </summary>
    void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output);

    /// <summary>output has Size × input.Length elements; output[r·n .. (r+1)·n) = rank r's input, on every rank.</summary>
    void AllGather(ReadOnlySpan<float> input, Span<float> output);

    /// <summary>Copies <paramref name="root"/>'s data to every rank.</summary>
    void Broadcast(Span<float> data, int root);

    /// <summary>Point-to-point: sends to <paramref name="peer"/>, matched by <paramref name="tag"/>.</summary>
    void Send(ReadOnlySpan<float> data, int peer, int tag);

    /// <summary>Point-to-point: receives exactly data.Length elements from <paramref name="peer"/> with <paramref name="tag"/>.</summary>
    void Receive(Span<float> data, int peer, int tag);

    void Barrier();

    /// <summary>
    /// MPI_Comm_split: a collective over this group that returns a new group of the ranks that passed the same
    /// <paramref name="color"/> (≥ 0), ranked by <paramref name="key"/> (ties by rank here). The new group has its own
    /// traffic counter and the same timeout, and detects dead ranks like this one; disposing this group disposes it.
    /// Every rank must call it, in the same order relative to its other calls.
    /// </summary>
    ICommunicator Split(int color, int key);
}

/// <summary>A collective failed: timed out, or a peer is gone. The message names the collective and the rank.</summary>
public sealed class CommunicationException(Collective collective, int? missingRank, string message)
    : Exception(message)
{
    public Collective Collective { get; } = collective;

    /// <summary>The rank that did not answer or died, where it is known.</summary>
    public int? MissingRank { get; } = missingRank;
}
