namespace Shardwise.Distributed;

/// <summary>
/// Bytes one rank sends and receives when a collective runs as the bandwidth-optimal ring algorithm; every
/// communicator counts these (whatever it actually runs) so traffic reports compare across implementations.
/// n is the element count of the full buffer, N the group size; a ring pass moves every chunk but one's own,
/// n·(N−1)/N elements (integer division, i.e. rounded down when N does not divide n):
/// <list type="bullet">
/// <item>AllReduce: a reduce-scatter pass plus an all-gather pass, 2·(n·(N−1)/N) elements sent and as many received.</item>
/// <item>ReduceScatter: n = N × output length, so (N−1)·output length sent and received.</item>
/// <item>AllGather: n = N × input length, so (N−1)·input length sent and received.</item>
/// <item>Broadcast: the root sends n, every other rank receives n (a pipelined chain; the root's view).</item>
/// <item>Send/Receive: n sent / n received. Barrier: nothing.</item>
/// </list>
/// With N = 1 nothing moves.
/// </summary>
public static class RingTraffic
{
    /// <summary>Elements one rank sends (and receives) in one ring pass over an n-element buffer.</summary>
    public static long RingPass(long n, int size) => size <= 1 ? 0 : n * (size - 1) / size;

    public static long AllReduce(long n, int size) => 2 * RingPass(n, size);

    /// <summary><paramref name="outputLength"/> is one rank's share; the full buffer is size × outputLength.</summary>
    public static long ReduceScatter(long outputLength, int size) => RingPass(outputLength * size, size);

    /// <summary><paramref name="inputLength"/> is one rank's share; the full buffer is size × inputLength.</summary>
    public static long AllGather(long inputLength, int size) => RingPass(inputLength * size, size);

    /// <summary>(sent, received) elements of a broadcast of n elements.</summary>
    public static (long Sent, long Received) Broadcast(long n, int size, bool isRoot) =>
        size <= 1 ? (0, 0) : isRoot ? (n, 0) : (0, n);
}
