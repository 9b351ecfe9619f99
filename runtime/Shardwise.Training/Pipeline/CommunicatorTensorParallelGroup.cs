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
/// <see cref="GatherParts"/>) go through host memory.
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

    /// <summary>Through host memory on every backend (on a GPU: this rank's part down and up again).</summary>
    public void KeepPart(Slice value, Slice part)
    {
        var (from, count, _) = TensorParts.Of(value.Length, tensor.Rank, tensor.Size);
        if (count == 0) return;
        Span<float> mine = Buffer(ref _part, count);
        ops.Store(value with { Offset = value.Offset + from, Length = count }, mine);
        ops.Load(mine, part with { Length = count });
    }

    /// <summary>Every rank sends its part, padded to the common length; the value is read back from the gathered parts (through host memory).</summary>
    public void GatherParts(Slice part, Slice value)
    {
        var (_, count, chunk) = TensorParts.Of(value.Length, tensor.Rank, tensor.Size);
        if (chunk == 0) return;
        Span<float> mine = Buffer(ref _part, chunk);
        mine.Clear();
        if (count > 0) ops.Store(part with { Length = count }, mine[..(int)count]);
        Span<float> all = Buffer(ref _parts, chunk * tensor.Size);
        tensor.AllGather(mine, all);
        ops.Load(all[..checked((int)value.Length)], value);
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
