using System;
using Shardwise.Distributed;
using Shardwise.Training.Compression;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO++'s qgZ (zero_quantized_gradients): the gradient reduce-scatter replaced by all-to-alls of quantized
/// segments, each segment encoded on its own as 4-bit blocks (<see cref="BlockQuantizer"/>) and every sum taken in
/// fp32 in rank order (so it does not depend on arrival). One level: each rank sends the segment meant for each rank
/// there and sums the N it receives. Hierarchical, with hpZ's nodes (<see cref="NodeGroups"/>), as DeepSpeed's qgZ:
/// first within the node, each rank sending a node peer the segments of every rank at that peer's place in its node,
/// and summing what its peers sent into one partial sum per node; then across nodes, among the ranks at this place,
/// the partial sums re-encoded, each to its rank, and summed. A rank then sends (k−1)/k of the bucket within its
/// node and only 1/k − 1/N of it between nodes, where one level sends (N−1)/N of it between ranks anywhere; at about
/// half a byte per value against the fp32 reduce-scatter's four.
/// </summary>
public sealed class QuantizedReduceScatter
{
    /// <summary>Bits per gradient on the wire (DeepSpeed's qgZ sends int4).</summary>
    public const int Bits = 4;

    private readonly ICommunicator _communicator;
    private readonly NodeGroups? _nodes;
    private readonly BlockQuantizer _quantizer = new(Bits);
    private readonly float[] _send;
    private readonly float[] _received;
    private readonly float[] _partial; // hierarchical: this node's sums of the segments of the ranks at this rank's place

    /// <param name="maxSegment">The most elements one rank receives (one rank's share of a bucket).</param>
    /// <param name="nodes">hpZ's nodes: reduce within them first (null: one level).</param>
    public QuantizedReduceScatter(ICommunicator communicator, long maxSegment, NodeGroups? nodes = null)
    {
        _communicator = communicator;
        _nodes = nodes;
        long buffer = (long)_quantizer.EncodedLength(checked((int)maxSegment)) * communicator.Size;
        _send = new float[buffer];
        _received = new float[buffer];
        _partial = nodes is null ? Array.Empty<float>() : new float[maxSegment * (communicator.Size / nodes.RanksPerNode)];
    }

    public long BufferBytes => (_send.LongLength + _received.LongLength + _partial.LongLength) * sizeof(float);

    /// <summary>The buffers' bytes for <paramref name="ranks"/> ranks, shares of up to <paramref name="maxSegment"/>, nodes of <paramref name="ranksPerNode"/>.</summary>
    public static long BufferBytesOf(int ranks, long maxSegment, int ranksPerNode = 1)
        => (2L * new BlockQuantizer(Bits).EncodedLength(checked((int)maxSegment)) * ranks + (ranksPerNode > 1 ? maxSegment * (ranks / ranksPerNode) : 0))
           * sizeof(float);

    /// <summary>
    /// As <see cref="ICommunicator.ReduceScatterSum"/>: <paramref name="input"/> holds N segments of
    /// <paramref name="output"/>.Length; this rank receives the sum over ranks of its segment, quantized on the way.
    /// </summary>
    public void ReduceScatterSum(ReadOnlySpan<float> input, Span<float> output)
    {
        if (_nodes is null) OneLevel(input, output);
        else Hierarchical(_nodes, input, output);
    }

    private void OneLevel(ReadOnlySpan<float> input, Span<float> output)
    {
        int n = output.Length, encoded = _quantizer.EncodedLength(n), ranks = _communicator.Size;
        for (int r = 0; r < ranks; r++) _quantizer.Encode(input.Slice(r * n, n), _send.AsSpan(r * encoded, encoded));
        PairwiseAllToAll.Exchange(_communicator, _send.AsSpan(0, encoded * ranks), _received.AsSpan(0, encoded * ranks), encoded);
        output.Clear();
        for (int r = 0; r < ranks; r++) _quantizer.DecodeAdd(_received.AsSpan(r * encoded, encoded), output);
    }

    private void Hierarchical(NodeGroups nodes, ReadOnlySpan<float> input, Span<float> output)
    {
        int n = output.Length, encoded = _quantizer.EncodedLength(n);
        int k = nodes.RanksPerNode, count = _communicator.Size / k; // ranks per node, nodes
        // Within the node: peer p gets, for every node, the segment of the rank at place p there (world rank node·k + p).
        for (int peer = 0; peer < k; peer++)
            for (int node = 0; node < count; node++)
                _quantizer.Encode(input.Slice((node * k + peer) * n, n), _send.AsSpan((peer * count + node) * encoded, encoded));
        int block = count * encoded;
        PairwiseAllToAll.Exchange(nodes.Node, _send.AsSpan(0, k * block), _received.AsSpan(0, k * block), block);
        var partial = _partial.AsSpan(0, count * n);
        partial.Clear();
        for (int peer = 0; peer < k; peer++)
            for (int node = 0; node < count; node++)
                _quantizer.DecodeAdd(_received.AsSpan(peer * block + node * encoded, encoded), partial.Slice(node * n, n));

        // Across nodes: the partial sum for the rank at this place in node j goes to node j.
        for (int node = 0; node < count; node++) _quantizer.Encode(partial.Slice(node * n, n), _send.AsSpan(node * encoded, encoded));
        PairwiseAllToAll.Exchange(nodes.Across, _send.AsSpan(0, count * encoded), _received.AsSpan(0, count * encoded), encoded);
        output.Clear();
        for (int node = 0; node < count; node++) _quantizer.DecodeAdd(_received.AsSpan(node * encoded, encoded), output);
    }
}
