using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO-3's parameter side on the device: when the generated program says a slot is needed, it is all-gathered from
/// every rank's partition working copy straight into the pool region the residency plan gives it
/// (<see cref="DeviceSlotSharding.GatherSlot"/>, one collective per request); when released, the mapping is dropped.
/// Slots kept whole (persistence threshold) are never gathered here. Unlike the host path's
/// <see cref="ParameterStreamer"/> it does not prefetch: each request waits for its own gather.
/// </summary>
public sealed class DeviceParameterStreamer(DeviceSlotSharding sharding, GradientStreamingOps<float> ops) : IParameterListener
{
    /// <summary>Slots gathered so far (twice per slot per step: forward and backward).</summary>
    public int Gathers { get; private set; }

    public void ParametersNeeded(int slot, int phase)
    {
        if (ops.IsPersistent(slot)) return;
        sharding.GatherSlot(slot, ops.MakeResident(slot, phase));
        Gathers++;
    }

    public void ParametersReleased(int slot, int phase) => ops.Release(slot);
}
