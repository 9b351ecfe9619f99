using System;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// The tensor-parallel group a stage program all-reduces over (Megatron's f and g, and the vocabulary-parallel loss's
/// maxima), on a communicator: the planned buffer of the backend's arena (the selected activation window) is reduced in
/// place on the CPU backend, in device memory on a GPU whose communicator is NCCL on it, and otherwise through a host
/// copy of the slice alone (<see cref="SliceExchange"/>).
/// </summary>
public sealed class CommunicatorTensorParallelGroup(ITensorOps<float> ops, ICommunicator tensor) : ITensorParallelGroup
{
    private readonly SliceExchange _exchange = new(ops);
    private double[] _maxima = [];

    public int Rank => tensor.Rank;

    public int Size => tensor.Size;

    public void AllReduceSum(Slice data)
    {
        if (_exchange.TryAllReduce(data, tensor, DeviceReduction.Sum)) return;
        Span<float> values = _exchange.Read(data);
        tensor.AllReduceSum(values);
        _exchange.Write(data, values);
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
