using System;
using Shardwise.Distributed;
using Shardwise.Training.Compression;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO++'s qgZ (zero_quantized_gradients): the gradient reduce-scatter replaced by an all-to-all of quantized
/// segments. Each rank encodes the segment meant for each rank as 4-bit blocks (<see cref="BlockQuantizer"/>), sends it
/// there, and sums the N segments it receives in fp32, in rank order (so the sum does not depend on arrival). An fp32
/// ring reduce-scatter sends (N−1)/N of the bucket per rank as 4-byte values; this sends the same share at about
/// half a byte per value. DeepSpeed's qgZ quantizes to 4 bits as well, and hierarchically (within a node, then across
/// nodes); here the exchange is one level.
/// </summary>
public sealed class QuantizedReduceScatter
{
    /// <summary>Bits per gradient on the wire (DeepSpeed's qgZ sends int4).</summary>
    public const int Bits = 4;

    private readonly ICommunicator _communicator;
    private readonly BlockQuantizer _quantizer = new(Bits);
    private readonly float[] _send;
    private readonly float[] _received;

    /// <param name="maxSegment">The most elements one rank receives (one rank's share of a bucket).</param>
    public QuantizedReduceScatter(ICommunicator communicator, long maxSegment)
    {
        _communicator = communicator;
        long buffer = (long)_quantizer.EncodedLength(checked((int)maxSegment)) * communicator.Size;
        _send = new float[buffer];
        _received = new float[buffer];
    }

    public long BufferBytes => (_send.LongLength + _received.LongLength) * sizeof(float);

    /// <summary>The encoded buffers' bytes for <paramref name="ranks"/> ranks and shares of up to <paramref name="maxSegment"/>.</summary>
    public static long BufferBytesOf(int ranks, long maxSegment)
        => 2L * new BlockQuantizer(Bits).EncodedLength(checked((int)maxSegment)) * ranks * sizeof(float);

    /// <summary>
    /// As <see cref="ICommunicator.ReduceScatterSum"/>: <paramref name="input"/> holds N segments of
    /// <paramref name="output"/>.Length; this rank receives the sum over ranks of its segment, each quantized on the way.
    /// </summary>
    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        int n = output.Length, encoded = _quantizer.EncodedLength(n), ranks = _communicator.Size;
        for (int r = 0; r < ranks; r++) _quantizer.Encode(input.Slice(r * n, n), _send.AsSpan(r * encoded, encoded));
        PairwiseAllToAll.Exchange(_communicator, _send.AsSpan(0, encoded * ranks), _received.AsSpan(0, encoded * ranks), encoded);
        output.Clear();
        for (int r = 0; r < ranks; r++) _quantizer.DecodeAdd(_received.AsSpan(r * encoded, encoded), output);
    }
}
