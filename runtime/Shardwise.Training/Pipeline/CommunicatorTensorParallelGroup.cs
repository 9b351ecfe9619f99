using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// The tensor-parallel group a stage program all-reduces over (Megatron's f and g), on a communicator: the planned
/// buffer is viewed in the backend's arena (the selected activation window) and summed in place.
/// </summary>
public sealed class CommunicatorTensorParallelGroup(ITensorOps<float> ops, ICommunicator tensor) : ITensorParallelGroup
{
    public int Rank => tensor.Rank;

    public int Size => tensor.Size;

    public void AllReduceSum(Slice data) =>
        tensor.AllReduceSum(ops.View(data.Arena).Slice(checked((int)data.Offset), checked((int)data.Length)));
}
