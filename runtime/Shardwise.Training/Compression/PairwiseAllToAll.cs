using System;
using Shardwise.Distributed;

namespace Shardwise.Training.Compression;

/// <summary>
/// All-to-all over the communicator's point-to-point calls: block r of <c>send</c> goes to rank r, block w of
/// <c>receive</c> comes from rank w. Round k pairs each rank with rank + k (to send) and rank − k (to receive); the
/// pairs form cycles, and in each cycle its smallest rank receives first while the others send first, so blocking
/// sends cannot deadlock.
/// </summary>
internal static class PairwiseAllToAll
{
    /// <summary>The tag of every message (a pair exchanges at most one message each way per call, in order).</summary>
    public const int Tag = 32_000;

    public static void Exchange(ICommunicator communicator, ReadOnlySpan<float> send, Span<float> receive, int block)
    {
        int size = communicator.Size, rank = communicator.Rank;
        if (send.Length != size * block || receive.Length != size * block)
            throw new ArgumentException($"all-to-all of {size} blocks of {block} floats: send {send.Length}, receive {receive.Length}");
        send.Slice(rank * block, block).CopyTo(receive.Slice(rank * block, block));
        for (int k = 1; k < size; k++)
        {
            int to = (rank + k) % size, from = (rank - k + size) % size;
            // The cycle through this rank under +k holds the ranks ≡ rank (mod gcd(k, size)); its smallest is rank mod gcd.
            bool receiveFirst = rank < GreatestCommonDivisor(k, size);
            if (receiveFirst) communicator.Receive(receive.Slice(from * block, block), from, Tag);
            communicator.Send(send.Slice(to * block, block), to, Tag);
            if (!receiveFirst) communicator.Receive(receive.Slice(from * block, block), from, Tag);
        }
    }

    private static int GreatestCommonDivisor(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
