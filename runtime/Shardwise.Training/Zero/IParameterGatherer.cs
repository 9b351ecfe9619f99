using System;
using Shardwise.Ops;

namespace Shardwise.Training.Zero;

/// <summary>
/// How ZeRO-3's <see cref="ParameterStreamer"/> moves a slot from its owners' pieces into the pool region the program
/// reads: through host memory (<see cref="HostParameterGatherer"/>) or on the device (<see cref="DeviceSlotSharding"/>).
/// The streamer decides what to gather and when (the static order, the prefetch groups); a gatherer only moves data.
/// </summary>
public interface IParameterGatherer
{
    /// <summary>Elements of the prefetch staging (stage3_prefetch_bucket_size, capped; 0: no prefetch).</summary>
    long PrefetchElements { get; }

    /// <summary>The most elements one rank's segment of a prefetch group may hold.</summary>
    long MaxGroupSegment { get; }

    /// <summary>
    /// Gathers <paramref name="slots"/> in one collective into the prefetch staging at <paramref name="at"/>,
    /// rank-major: rank r's segment holds its piece of each slot in the given order, each padded to the piece size.
    /// Returns one rank's segment length.
    /// </summary>
    int GatherGroup(ReadOnlySpan<int> slots, int at);

    /// <summary>
    /// Copies <paramref name="slot"/> out of a group gathered at <paramref name="group"/> (segments of
    /// <paramref name="segment"/> elements, the slot's piece at <paramref name="at"/> in each) into <paramref name="destination"/>.
    /// </summary>
    void CopyGathered(int slot, int group, int segment, int at, Slice destination);

    /// <summary>Gathers one slot on demand into <paramref name="destination"/> (it may run while a gradient bucket is pending).</summary>
    void GatherAlone(int slot, Slice destination);
}

/// <summary>
/// ZeRO-3's gathers through host memory: <see cref="SlotSharding"/>'s collectives on host spans of the arenas, this rank's
/// pieces read from a host array or from the NVMe swap of offload_param (or, for hpZ, from a <see cref="SecondaryPartition"/>).
/// </summary>
public sealed class HostParameterGatherer : IParameterGatherer
{
    private readonly SlotSharding _sharding;
    private readonly GradientStreamingOps<float> _ops;
    private readonly IOwnedPieces _pieces;
    private readonly float[] _staging;

    public HostParameterGatherer(SlotSharding sharding, GradientStreamingOps<float> ops, IOwnedPieces pieces, long prefetchElements)
        : this(sharding, ops, pieces, new float[Math.Max(0, prefetchElements)])
    {
    }

    /// <summary>A gatherer whose prefetch groups go into <paramref name="staging"/>, shared with another gatherer.</summary>
    internal HostParameterGatherer(SlotSharding sharding, GradientStreamingOps<float> ops, IOwnedPieces pieces, float[] staging)
    {
        _sharding = sharding;
        _ops = ops;
        _pieces = pieces;
        _staging = staging;
    }

    /// <summary>The prefetch staging (hpZ's secondary gathers share it).</summary>
    internal float[] Staging => _staging;

    public long PrefetchElements => _staging.LongLength;

    public long MaxGroupSegment => _sharding.MaxGatherSegment;

    public int GatherGroup(ReadOnlySpan<int> slots, int at) => _sharding.GatherRankMajor(slots, _pieces, _staging.AsSpan(at));

    public void CopyGathered(int slot, int group, int segment, int at, Slice destination)
        => _sharding.CopyGathered(slot, _staging.AsSpan(group), segment, at, Host(destination));

    public void GatherAlone(int slot, Slice destination) => _sharding.GatherSlot(slot, _pieces, Host(destination));

    /// <summary>The pool region <paramref name="destination"/> as a host span.</summary>
    internal Span<float> Host(Slice destination) => _ops.View(Arena.Parameters).Slice((int)destination.Offset, (int)destination.Length);
}
