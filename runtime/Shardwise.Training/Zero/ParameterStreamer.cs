using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO-3's parameter side: when the generated program says a slot is needed, all-gathers it from every rank's
/// 16-bit piece into the pool region the residency plan gives it; when released, forgets the mapping (the plan has
/// already decided who reuses the memory). Slots kept whole (persistence threshold) are never gathered here.
/// </summary>
public sealed class ParameterStreamer : IParameterListener
{
    private readonly SlotSharding _sharding;
    private readonly GradientStreamingOps<float> _ops;
    private readonly float[] _pieces;

    public ParameterStreamer(SlotSharding sharding, GradientStreamingOps<float> ops, float[] pieces)
    {
        _sharding = sharding;
        _ops = ops;
        _pieces = pieces;
    }

    /// <summary>Slots gathered since the last reset (twice per slot per step: forward and backward).</summary>
    public int Gathers { get; private set; }

    public void ResetCount() => Gathers = 0;

    public void ParametersNeeded(int slot, int phase)
    {
        if (_ops.IsPersistent(slot)) return;
        var region = _ops.MakeResident(slot, phase);
        _sharding.GatherSlot(slot, _pieces, _ops.View(Arena.Parameters).Slice((int)region.Offset, (int)region.Length));
        Gathers++;
    }

    public void ParametersReleased(int slot, int phase) => _ops.Release(slot);
}
