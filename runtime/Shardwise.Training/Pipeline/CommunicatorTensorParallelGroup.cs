using System;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// The tensor-parallel group a stage program all-reduces over (Megatron's f and g, and the vocabulary-parallel loss's
/// maxima), on a communicator: the planned buffer is viewed in the backend's arena (the selected activation window) and
/// reduced in place.
/// </summary>
public sealed class CommunicatorTensorParallelGroup(ITensorOps<float> ops, ICommunicator tensor) : ITensorParallelGroup
{
    private double[] _maxima = [];

    public int Rank => tensor.Rank;

    public int Size => tensor.Size;

    public void AllReduceSum(Slice data) => tensor.AllReduceSum(View(data));

    /// <summary>The communicator's max works on doubles; every float converts to a double and back exactly.</summary>
    public void AllReduceMax(Slice data)
    {
        Span<float> values = View(data);
        if (_maxima.Length < values.Length) _maxima = new double[values.Length];
        Span<double> maxima = _maxima.AsSpan(0, values.Length);
        for (int i = 0; i < values.Length; i++) maxima[i] = values[i];
        tensor.AllReduceMax(maxima);
        for (int i = 0; i < values.Length; i++) values[i] = (float)maxima[i];
    }

    private Span<float> View(Slice data) => ops.View(data.Arena).Slice(checked((int)data.Offset), checked((int)data.Length));
}
