using System;
using Shardwise.Plans;
using Shardwise.Precision;

namespace Shardwise.Training.Zero;

/// <summary>
/// Listens to the generated backward pass in ZeRO-2/3: when the program announces a slot's gradient final, rounds it
/// to 16-bit storage, copies it into the gradient bucket (reduce-scattered into this rank's accumulator, averaged over
/// ranks as DeepSpeed does, once reduce_bucket_size elements are pending), and clears its pool region at once for the
/// next slot or micro-batch that reuses it. <see cref="EndBackward"/> reduces the last, partial bucket.
/// </summary>
public sealed class GradientStreamer : IGradientListener
{
    private readonly SlotSharding _sharding;
    private readonly GradientStreamingOps<float> _ops;
    private readonly float[] _accumulator;
    private readonly StorageType _storage;

    public GradientStreamer(SlotSharding sharding, GradientStreamingOps<float> ops, float[] accumulator, StorageType storage)
    {
        _sharding = sharding;
        _ops = ops;
        _accumulator = accumulator;
        _storage = storage;
    }

    /// <summary>Slots handed to the bucket since the last <see cref="ResetCount"/> (every slot, every micro-batch).</summary>
    public int SlotsReduced { get; private set; }

    public void ResetCount() => SlotsReduced = 0;

    public void GradientsReady(long fromOffset)
    {
        // ZeRO-2 reduces per slot (GradientFinal); the offset-based events serve stage 0's buckets.
    }

    public void GradientFinal(int slot)
    {
        var region = _ops.PoolSlice(_sharding.Layout.Slots[slot]);
        var gradient = _ops.View(Ops.Arena.Gradients).Slice((int)region.Offset, (int)region.Length);
        StorageRounding.RoundInPlace(gradient, _storage);
        _sharding.ReduceSlot(slot, gradient, _accumulator, 1f / _sharding.Communicator.Size);
        gradient.Clear();
        SlotsReduced++;
    }

    /// <summary>After each backward pass, on every rank: reduces the slots still waiting in the bucket.</summary>
    public void EndBackward() => _sharding.FlushReductions();
}
