using System;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// The tensor-parallel group a stage program all-reduces over (Megatron's f and g, and the vocabulary-parallel loss's
/// maxima), on a communicator: the planned buffer of the backend's arena (the selected activation window) is reduced in
/// place on the CPU backend, in device memory on a GPU whose communicator is NCCL on it, and otherwise through a host
/// copy of the slice alone (<see cref="SliceExchange"/>). Partitioned checkpoint inputs (<see cref="KeepPart"/>,
/// <see cref="GatherParts"/>) are kept by a copy in the arena and gathered in device memory where NCCL allows it.
/// </summary>
public sealed class CommunicatorTensorParallelGroup(ITensorOps<float> ops, ICommunicator tensor) : ITensorParallelGroup
{
    private readonly SliceExchange _exchange = new(ops);
    private double[] _maxima = [];
    private float[] _part = [];
    private float[] _parts = [];

    public int Rank => tensor.Rank;

    public int Size => tensor.Size;

    public void AllReduceSum(Slice data)
    {
        if (_exchange.TryAllReduce(data, tensor, DeviceReduction.Sum)) return;
        Span<float> values = _exchange.Read(data);
        tensor.AllReduceSum(values);
        _exchange.Write(data, values);
    }

    /// <summary>A copy inside the backend's arena (no host memory on a GPU).</summary>
    public void KeepPart(Slice value, Slice part)
    {
        var (from, count, _) = TensorParts.Of(value.Length, tensor.Rank, tensor.Size);
        if (count == 0) return;
        ops.AddBackward(value with { Offset = value.Offset + from, Length = count }, part with { Length = count }, count, accumulate: false);
    }

    /// <summary>
    /// Parts of equal length: this rank's part is copied to its place in the value and the parts are all-gathered there
    /// (<see cref="AllGatherInPlace"/>: in device memory over NCCL). Otherwise (the last parts shorter) through host
    /// memory: every rank sends its part, padded to the common length, and the value is read back from the gathered parts.
    /// </summary>
    public void GatherParts(Slice part, Slice value)
    {
        var (from, count, chunk) = TensorParts.Of(value.Length, tensor.Rank, tensor.Size);
        if (chunk == 0) return;
        if (value.Length % tensor.Size == 0)
        {
            ops.AddBackward(part with { Length = count }, value with { Offset = value.Offset + from, Length = count }, count, accumulate: false);
            AllGatherInPlace(value);
            return;
        }
        Span<float> mine = Buffer(ref _part, chunk);
        mine.Clear();
        if (count > 0) ops.Store(part with { Length = count }, mine[..(int)count]);
        Span<float> all = Buffer(ref _parts, chunk * tensor.Size);
        tensor.AllGather(mine, all);
        ops.Load(all[..checked((int)value.Length)], value);
    }

    /// <summary>
    /// <paramref name="slice"/> holds one equal part per tensor rank, rank r's at r · length / t, and this rank's part is
    /// in place; afterwards every part is (in device memory over NCCL on the backend's GPU, else through host memory).
    /// </summary>
    public void AllGatherInPlace(Slice slice)
    {
        if (slice.Length % tensor.Size != 0)
            throw new ArgumentException($"{slice} does not split into {tensor.Size} equal parts", nameof(slice));
        if (_exchange.TryAllGather(slice, tensor)) return;
        long chunk = slice.Length / tensor.Size;
        Span<float> mine = Buffer(ref _part, chunk);
        ops.Store(slice with { Offset = slice.Offset + tensor.Rank * chunk, Length = chunk }, mine);
        Span<float> all = Buffer(ref _parts, slice.Length);
        tensor.AllGather(mine, all);
        ops.Load(all, slice);
    }

    private static Span<float> Buffer(ref float[] buffer, long length)
    {
        if (buffer.Length < length) buffer = new float[length];
        return buffer.AsSpan(0, checked((int)length));
    }

    /// <summary>The communicator's max works on doubles; every float converts to a double and back exactly.</summary>
    public void AllReduceMax(Slice data)
    {
        if (_exchange.TryAllReduce(data, tensor, DeviceReduction.Max)) return;
        Span<float> values = _exchange.Read(data);
        if (_maxima.Length < values.Length) _maxima = new double[values.Length];
        Span<double> maxima = _maxima.AsSpan(0, values.Length);
        for (int i = 0; i < values.Length; i++) maxima[i] = values[i];
        tensor.AllReduceMax(maxima);
        for (int i = 0; i < values.Length; i++) values[i] = (float)maxima[i];
        _exchange.Write(data, values);
    }
}
