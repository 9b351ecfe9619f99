using System;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Shardwise.Distributed;
using Shardwise.Precision;
using Shardwise.Training.Compression;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Zero;

/// <summary>
/// The sums behind data-parallel gradient averaging on the host path, as <see cref="GradientCommunicationConfig"/>
/// asks: each rank's values are multiplied by <see cref="PreScale"/> (1/ranks with prescale_gradients, else
/// 1/gradient_predivide_factor), summed over the ranks in <see cref="Wire"/>'s type, and multiplied by
/// <see cref="PostScale"/> = 1/<see cref="PreScale"/>; the caller then averages as before. So what may overflow is
/// what DeepSpeed risks: in fp16 the scaled values and their sum are rounded to 16 bits, and a sum past 65,504 becomes
/// ∞, which the loss scaler's overflow check after the reduction sees.
/// <para>
/// A 16-bit wire packs two values per float and reduces by an all-to-all of segments (each rank sums the N copies of
/// its segment in fp32, in rank order, and rounds the sum once), then all-gathers the rounded segments: the same
/// 2·(N−1)/N of the bucket a ring all-reduce sends, at two bytes a value instead of four, with one rounding where
/// NCCL's 16-bit ring rounds at every hop. fp32 (and the default) goes through the communicator's own collectives.
/// </para>
/// </summary>
public sealed class GradientReduction
{
    private readonly ICommunicator _communicator;
    private readonly int _capacity;    // the largest segment a call may reduce
    // Allocated by the first 16-bit reduction (a GPU whose NCCL reduces as asked never makes one):
    private float[] _send = [];     // packed 16-bit segments, one per rank
    private float[] _received = []; // the same, received
    private float[] _sum = [];      // fp32 sum of this rank's segment
    private float[] _widened = [];  // one received segment in fp32

    /// <param name="maxElements">The most elements one call reduces (a bucket, or a reduce-scatter's whole input).</param>
    public GradientReduction(ICommunicator communicator, GradientCommunicationConfig config, long maxElements)
    {
        _communicator = communicator;
        int ranks = communicator.Size;
        Wire = config.DataType ?? StorageType.Float32;
        PreScale = ranks == 1 ? 1f
            : config.PrescaleGradients ? 1f / ranks
            : (float)(1.0 / config.PredivideFactor);
        PostScale = PreScale == 1f ? 1f : 1f / PreScale;
        _capacity = SegmentOf(Math.Max(1, maxElements), ranks);
    }

    /// <summary>The element type the sums travel in.</summary>
    public StorageType Wire { get; }

    public float PreScale { get; }

    public float PostScale { get; }

    private bool IsSixteenBit => Wire != StorageType.Float32;

    /// <summary>Host buffers of the 16-bit wire, once allocated (none for fp32).</summary>
    public long BufferBytes => (_send.LongLength + _received.LongLength + _sum.LongLength + _widened.LongLength) * sizeof(float);

    /// <summary>The same, before a reduction object exists (the memory plan).</summary>
    public static long BufferBytesFor(GradientCommunicationConfig config, int ranks, long maxElements)
    {
        if (ranks == 1 || (config.DataType ?? StorageType.Float32) == StorageType.Float32) return 0;
        int segment = SegmentOf(maxElements, ranks);
        return (2L * WordsOf(segment) * ranks + 2L * segment) * sizeof(float);
    }

    /// <summary>
    /// Values sent per gradient value relative to the fp32 collectives: 1, or 1/2 on a 16-bit wire (up to a segment's
    /// padding to a whole float).
    /// </summary>
    public static double WireFraction(GradientCommunicationConfig config)
        => (config.DataType ?? StorageType.Float32) == StorageType.Float32 ? 1.0 : 0.5;

    /// <summary>
    /// Every rank's <paramref name="data"/> becomes its average over the ranks: PostScale · Σ_ranks wire(PreScale · data),
    /// divided by the rank count (what ZeRO 0's buckets and overlap_comm's take).
    /// </summary>
    public void AllReduceAverage(Span<float> data)
    {
        AllReduceSum(data);
        if (_communicator.Size > 1) GradientClipping.Scale(data, 1f / _communicator.Size);
    }

    /// <summary>Every rank's <paramref name="data"/> becomes PostScale · Σ_ranks wire(PreScale · data).</summary>
    public void AllReduceSum(Span<float> data)
    {
        if (_communicator.Size == 1) return;
        if (!IsSixteenBit)
        {
            Scale(data, PreScale);
            _communicator.AllReduceSum(data);
            Scale(data, PostScale);
            return;
        }

        int ranks = _communicator.Size, segment = SegmentOf(data.Length, ranks), words = WordsOf(segment);
        Scale(data, PreScale);
        ReduceOwnSegment(data, segment, words);
        _communicator.AllGather(_send.AsSpan(0, words), _received.AsSpan(0, words * ranks));
        for (int r = 0; r < ranks; r++) Unpack(_received.AsSpan(r * words, words), Segment(data, r, segment));
        Scale(data, PostScale);
    }

    /// <summary>
    /// As <see cref="ICommunicator.ReduceScatterSum"/>, with the scaling and wire type above: <paramref name="input"/>
    /// holds one segment of <paramref name="output"/>.Length per rank, and is used as scratch (scaled in place).
    /// </summary>
    public void ReduceScatterSum(Span<float> input, Span<float> output)
    {
        int ranks = _communicator.Size, segment = output.Length;
        if (input.Length != segment * ranks)
            throw new ArgumentException($"reduce-scatter of {ranks} segments of {segment}: the input has {input.Length} values");
        if (ranks == 1)
        {
            input.CopyTo(output);
            return;
        }
        Scale(input, PreScale);
        if (!IsSixteenBit)
        {
            _communicator.ReduceScatterSum(input, output);
        }
        else
        {
            int words = WordsOf(segment);
            ReduceOwnSegment(input, segment, words);
            Unpack(_send.AsSpan(0, words), output);
        }
        Scale(output, PostScale);
    }

    /// <summary>
    /// The 16-bit wire's reduction: segment r of <paramref name="data"/> (the last ones shorter, or empty) is packed and
    /// sent to rank r, this rank sums the N copies of its own segment in fp32, in rank order, and packs the sum, rounded
    /// once to the wire type, into the first <paramref name="words"/> of <c>_send</c>.
    /// </summary>
    private void ReduceOwnSegment(Span<float> data, int segment, int words)
    {
        RequireRoom(segment);
        int ranks = _communicator.Size;
        for (int r = 0; r < ranks; r++) Pack(Segment(data, r, segment), _send.AsSpan(r * words, words));
        PairwiseAllToAll.Exchange(_communicator, _send.AsSpan(0, words * ranks), _received.AsSpan(0, words * ranks), words);
        var sum = _sum.AsSpan(0, segment);
        var widened = _widened.AsSpan(0, segment);
        Unpack(_received.AsSpan(0, words), sum);
        for (int r = 1; r < ranks; r++)
        {
            Unpack(_received.AsSpan(r * words, words), widened);
            TensorPrimitives.Add(sum, widened, sum);
        }
        Pack(sum, _send.AsSpan(0, words));
    }

    /// <summary>Checks the call against the size given at construction, and allocates the buffers for it on the first call.</summary>
    private void RequireRoom(int segment)
    {
        if (segment > _capacity)
            throw new ArgumentException($"a segment of {segment} values is larger than the {_capacity} this reduction was sized for");
        Reserve();
    }

    /// <summary>
    /// Allocates the 16-bit wire's buffers now (the engine calls it once it knows the reduction runs on the host, so
    /// its memory report counts them from the start); nothing for fp32 or one rank.
    /// </summary>
    public void Reserve()
    {
        if (_sum.Length > 0 || !IsSixteenBit || _communicator.Size == 1) return;
        int ranks = _communicator.Size, words = WordsOf(_capacity);
        _send = new float[(long)words * ranks];
        _received = new float[(long)words * ranks];
        _sum = new float[_capacity];
        _widened = new float[_capacity];
    }

    /// <summary>Rank r's share of a buffer cut in segments (shorter, or empty, at the end).</summary>
    private static Span<float> Segment(Span<float> data, int r, int segment)
    {
        int from = Math.Min(r * segment, data.Length);
        return data.Slice(from, Math.Min(segment, data.Length - from));
    }

    /// <summary>Rounds <paramref name="values"/> to the wire type, two per float; the rest of <paramref name="words"/> is zero.</summary>
    private void Pack(ReadOnlySpan<float> values, Span<float> words)
    {
        Span<ushort> bits = MemoryMarshal.Cast<float, ushort>(words);
        StorageConversion.Narrow(values, bits.Slice(0, values.Length), Wire);
        bits.Slice(values.Length).Clear();
    }

    private void Unpack(ReadOnlySpan<float> words, Span<float> values)
        => StorageConversion.Widen(MemoryMarshal.Cast<float, ushort>(words).Slice(0, values.Length), values, Wire);

    private static void Scale(Span<float> values, float factor)
    {
        if (factor != 1f) TensorPrimitives.Multiply(values, factor, values);
    }

    private static int SegmentOf(long elements, int ranks) => checked((int)((elements + ranks - 1) / ranks));

    private static int WordsOf(int segment) => (segment + 1) / 2;
}
