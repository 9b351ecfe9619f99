using System;
using Shardwise.Distributed;
using Shardwise.Precision;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO++'s qwZ (zero_quantized_weights): ZeRO-3's parameter all-gather with every rank's 16-bit piece sent as int8
/// blocks (<see cref="BlockQuantizer"/>), a quarter of the fp32 bytes the host path moves otherwise (half of fp16's).
/// Every rank decodes every segment, its own included, and rounds it to the 16-bit storage as a GPU dequantizing into
/// an fp16 parameter would: so all ranks compute with the same weights, and only the copies the forward and backward
/// passes read are lossy; the pieces the optimizer updates stay exact.
/// </summary>
public sealed class QuantizedAllGather
{
    /// <summary>Bits per weight on the wire (DeepSpeed's qwZ sends int8).</summary>
    public const int Bits = 8;

    private readonly ICommunicator _communicator;
    private readonly StorageType _storage;
    private readonly BlockQuantizer _quantizer = new(Bits);
    private readonly float[] _send;
    private readonly float[] _received;

    /// <param name="maxSegment">The most elements one rank sends in one gather.</param>
    public QuantizedAllGather(ICommunicator communicator, long maxSegment, StorageType storage)
    {
        _communicator = communicator;
        _storage = storage;
        int encoded = _quantizer.EncodedLength(checked((int)maxSegment));
        _send = new float[encoded];
        _received = new float[(long)encoded * communicator.Size];
    }

    /// <summary>Bytes of the two encoded buffers (for plans: <see cref="BufferBytesOf"/>).</summary>
    public long BufferBytes => (_send.LongLength + _received.LongLength) * sizeof(float);

    /// <summary>The encoded buffers' bytes for <paramref name="ranks"/> ranks and segments of up to <paramref name="maxSegment"/>.</summary>
    public static long BufferBytesOf(int ranks, long maxSegment)
        => (long)new BlockQuantizer(Bits).EncodedLength(checked((int)maxSegment)) * (ranks + 1) * sizeof(float);

    /// <summary>
    /// As <see cref="ICommunicator.AllGather"/>: <paramref name="gathered"/>[r·n .. (r+1)·n) receives rank r's
    /// <paramref name="piece"/> (n elements), here quantized, decoded and rounded to the storage type.
    /// </summary>
    public void AllGather(ReadOnlySpan<float> piece, Span<float> gathered)
    {
        int n = piece.Length, encoded = _quantizer.EncodedLength(n), ranks = _communicator.Size;
        _quantizer.Encode(piece, _send);
        _communicator.AllGather(_send.AsSpan(0, encoded), _received.AsSpan(0, encoded * ranks));
        for (int r = 0; r < ranks; r++) _quantizer.Decode(_received.AsSpan(r * encoded, encoded), gathered.Slice(r * n, n));
        StorageRounding.RoundInPlace(gathered.Slice(0, n * ranks), _storage);
    }
}
