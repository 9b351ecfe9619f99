using System;
using System.Collections.Generic;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO-3's parameter side. When the generated program says a slot is needed, the slot is all-gathered from every
/// rank's 16-bit piece into the pool region the residency plan gives it; when released, the mapping is dropped (the
/// plan has already decided who reuses the memory). Slots kept whole (persistence threshold) are never gathered here.
/// The data moves through an <see cref="IParameterGatherer"/>: host memory, or the device over NCCL.
/// Prefetch follows the generator's static gather order (<see cref="ParameterPool.GatherOrderSlots"/>, its forward
/// entries then its backward ones, or in the order of a pipeline schedule's passes: <see cref="FollowPasses"/>): after each
/// request the next slots are gathered ahead, in one collective, into a staging buffer of stage3_prefetch_bucket_size
/// elements (capped so that pool + persistent + staging stay within stage3_max_live_parameters), and later copied into
/// place. The staging is a ring of groups of at most half its size: a group's place is free again once its last slot
/// is copied out, so the next group is gathered while the one before is still being used (on a GPU its all-gather
/// runs beside the layers that use the one before).
/// With hpZ (<see cref="SecondaryPartition"/>) a backward request reads the slot from the node group's copy that its
/// forward gather left behind; a prefetch group then holds slots of one source only, and a backward slot is prefetched
/// only once its forward gather has been placed, so backward never gathers across the whole world.
/// </summary>
public sealed class ParameterStreamer : IParameterListener
{
    private readonly SlotSharding _sharding;
    private readonly GradientStreamingOps<float> _ops;
    private readonly IParameterGatherer _gatherer;
    private readonly ParameterPool _plan;
    private readonly SecondaryPartition? _secondary;
    private readonly Func<LayerKeep?>? _layerKeep;
    // The order the requests of one step come in: the plan's forward entries then its backward ones, or the passes of a
    // pipeline schedule (1F1B runs several forwards before their backwards), each a copy of its phase's entries.
    private int[] _orderSlots;
    private int[] _orderPhases;
    private int[] _passOf; // per entry of the order, the pass it belongs to
    // Prefetched slots: their place in the gather order, and where the rank-major group holding them lies in the
    // staging buffer (its start, one rank's segment length) and where their pieces start within each segment, and
    // whether the group came from hpZ's secondary partition.
    private readonly Queue<(int Order, int Group, int Segment, int At, bool Secondary)> _prefetched = new();
    private readonly List<int> _group = new();
    private int _next;          // index in the gather order of the next expected request
    private int _prefetchedUpTo; // gather-order entries below this are prefetched or consumed
    private int _stagingTail;  // where the newest group ends in the staging ring

    /// <param name="secondary">hpZ's node-group copy (null: every gather is over all ranks).</param>
    /// <param name="layerKeep">
    /// The program's progressive layer drop for the current micro-batch (the same on every rank): slots only a dropped
    /// layer reads (<see cref="ParameterPool.SkippedWith"/>) are not gathered. Null: every slot is.
    /// </param>
    public ParameterStreamer(SlotSharding sharding, GradientStreamingOps<float> ops, IParameterGatherer gatherer, ParameterPool plan,
        SecondaryPartition? secondary = null, Func<LayerKeep?>? layerKeep = null)
    {
        _layerKeep = layerKeep;
        _sharding = sharding;
        _ops = ops;
        _gatherer = gatherer;
        _plan = plan;
        _secondary = secondary;
        (_orderSlots, _orderPhases, _passOf) = Order(plan, [0, 1]);
    }

    /// <summary>
    /// The phases of the passes one step runs, in order: forward (0) and backward (1) once each, or a pipeline
    /// schedule's, as 1F1B's F F B F B B on an early stage. Prefetch then follows them across pass boundaries instead of
    /// guessing backward after every forward.
    /// </summary>
    public void FollowPasses(IReadOnlyList<int> phases)
    {
        (_orderSlots, _orderPhases, _passOf) = Order(_plan, phases);
        _prefetched.Clear();
        _next = _prefetchedUpTo = _stagingTail = 0;
    }

    /// <summary>The passes' requests one after the other: for each pass, the plan's entries of its phase in their order.</summary>
    private static (int[] Slots, int[] Phases, int[] Passes) Order(ParameterPool plan, IReadOnlyList<int> phases)
    {
        var slots = new List<int>();
        var orderPhases = new List<int>();
        var passes = new List<int>();
        for (int pass = 0; pass < phases.Count; pass++)
        {
            if (phases[pass] is not (0 or 1)) throw new ArgumentException($"pass {pass} has phase {phases[pass]}: forward is 0, backward 1", nameof(phases));
            for (int i = 0; i < plan.GatherOrderSlots.Count; i++)
            {
                if (plan.GatherOrderPhases[i] != phases[pass]) continue;
                slots.Add(plan.GatherOrderSlots[i]);
                orderPhases.Add(phases[pass]);
                passes.Add(pass);
            }
        }
        return (slots.ToArray(), orderPhases.ToArray(), passes.ToArray());
    }

    /// <summary>Slots gathered since the last reset (twice per slot per step: forward and backward).</summary>
    public int Gathers { get; private set; }

    /// <summary>Requests served from the prefetch staging buffer.</summary>
    public int PrefetchHits { get; private set; }

    /// <summary>Bytes of the host prefetch staging (the device gatherer counts its own in the device staging).</summary>
    public long StagingBytes => _gatherer is HostParameterGatherer host ? host.PrefetchElements * sizeof(float) : 0;

    /// <summary>Bytes of hpZ's node-group copy and its gathers' buffers (0 without hpZ).</summary>
    public long SecondaryBytes => _secondary?.BufferBytes ?? 0;

    /// <summary>hpZ: requests served from the node group's copy (on demand or prefetched).</summary>
    public int SecondaryGathers { get; private set; }

    /// <summary>Requests answered without a gather because the micro-batch drops the only layer that reads the slot.</summary>
    public int DroppedLayerSkips { get; private set; }

    public void ResetCount() => Gathers = PrefetchHits = SecondaryGathers = DroppedLayerSkips = 0;

    /// <summary>Whether <paramref name="slot"/> is gathered in the current micro-batch: not kept whole, and read by a layer that runs.</summary>
    private bool Streams(int slot) => !_ops.IsPersistent(slot) && !DroppedWithItsLayer(slot);

    private bool DroppedWithItsLayer(int slot)
        => _plan.SkippedWith is { } skippedWith && skippedWith[slot] >= 0 && _layerKeep?.Invoke() is { } keep && !keep.Kept(skippedWith[slot]);

    /// <summary>The partitioned parameters changed (a step, a load): hpZ's copies are stale until the next forward gathers.</summary>
    public void ParametersChanged() => _secondary?.Invalidate();

    public void ParametersNeeded(int slot, int phase)
    {
        if (_ops.IsPersistent(slot)) return;
        if (DroppedWithItsLayer(slot))
        {
            DroppedLayerSkips++; // the guarded calls that would read it do not run in this micro-batch
            return;
        }
        Slice destination = _ops.MakeResident(slot, phase);

        int order = Locate(slot, phase);
        bool secondary;
        if (_prefetched.Count > 0 && _prefetched.Peek().Order == order)
        {
            (_, int group, int segment, int at, secondary) = _prefetched.Dequeue();
            GathererFor(secondary).CopyGathered(slot, group, segment, at, destination);
            PrefetchHits++;
        }
        else
        {
            secondary = phase == 1 && _secondary?.Holds(slot) == true;
            GathererFor(secondary).GatherAlone(slot, destination);
        }
        if (secondary) SecondaryGathers++;
        if (phase == 0) _secondary?.Keep(slot, destination);
        Gathers++;
        Prefetch();
    }

    private IParameterGatherer GathererFor(bool secondary) => secondary ? _secondary!.Gatherer : _gatherer;

    public void ParametersReleased(int slot, int phase) => _ops.Release(slot);

    /// <summary>
    /// Where a request falls in the static order. A request out of order (a forward-only pass such as evaluation,
    /// which never reaches the backward entries) restarts the order and drops what was prefetched.
    /// </summary>
    private int Locate(int slot, int phase)
    {
        // Slots kept whole are in the static order too but never requested: step over them, or every request after
        // the first of them would look out of order and drop the prefetched slots.
        while (_next < _orderSlots.Length && !Streams(_orderSlots[_next])) _next++;
        if (_next < _orderSlots.Length && _orderSlots[_next] == slot && _orderPhases[_next] == phase)
            return _next++;
        _prefetched.Clear();
        _stagingTail = 0;
        for (int i = 0; i < _orderSlots.Length; i++)
        {
            if (_orderSlots[i] == slot && _orderPhases[i] == phase)
            {
                _next = i + 1;
                _prefetchedUpTo = _next;
                return i;
            }
        }
        _next = _prefetchedUpTo = 0;
        return -1;
    }

    /// <summary>
    /// Gathers the upcoming slots of the static order that fit in the staging buffer's free space (padded) and in one
    /// send buffer, in one collective (a prefetch bucket, as DeepSpeed coalesces its parameter fetches).
    /// </summary>
    private void Prefetch()
    {
        if (_prefetchedUpTo < _next) _prefetchedUpTo = _next;
        _group.Clear();
        long capacity = _gatherer.PrefetchElements;
        // Progressive layer drop: the next pass belongs to another micro-batch, whose draw is not known yet.
        int end = _plan.SkippedWith is not null && _layerKeep is not null && _next > 0 ? PassEnd(_next - 1) : _orderSlots.Length;
        int first = _prefetchedUpTo;
        while (first < end && !Streams(_orderSlots[first])) first++;
        if (first >= end) return;
        // hpZ: backward slots come from the node group's copy, once their forward gather has left it there (the
        // loop below stops at the first that has not: then nothing is prefetched until it has).
        bool secondary = _secondary is not null && _orderPhases[first] == 1;
        var sharding = secondary ? _secondary!.Sharding : _sharding;
        var gatherer = GathererFor(secondary);
        int ranks = sharding.Communicator.Size;
        long firstPieces = sharding.PieceLength(_orderSlots[first]) * ranks;
        int group = FreeRunStart(firstPieces, out long room);
        // A group takes at most half the ring (but at least one piece), so that the next one fits beside it.
        long limit = Math.Min(room, Math.Max(capacity / 2, firstPieces));
        long segment = 0; // one rank's share of the group; the group takes segment × ranks of the staging
        int upTo = _prefetchedUpTo;
        while (upTo < end)
        {
            int slot = _orderSlots[upTo];
            if (Streams(slot))
            {
                if (_secondary is not null && ((_orderPhases[upTo] == 1) != secondary || (secondary && !_secondary.Holds(slot)))) break;
                long grown = segment + sharding.PieceLength(slot);
                if (grown * ranks > limit || grown > gatherer.MaxGroupSegment) break;
                _group.Add(slot);
                segment = grown;
            }
            upTo++;
        }
        if (_group.Count == 0) return;

        int groupSegment = gatherer.GatherGroup(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_group), group);
        int at = 0;
        for (int order = _prefetchedUpTo; order < upTo; order++)
        {
            int slot = _orderSlots[order];
            if (!Streams(slot)) continue;
            _prefetched.Enqueue((order, group, groupSegment, at, secondary));
            at += (int)sharding.PieceLength(slot);
        }
        _stagingTail = group + (int)(segment * ranks);
        _prefetchedUpTo = upTo;
    }

    /// <summary>The end (exclusive) of the pass that order entry <paramref name="entry"/> belongs to.</summary>
    private int PassEnd(int entry)
    {
        int end = entry;
        while (end < _passOf.Length && _passOf[end] == _passOf[entry]) end++;
        return end;
    }

    /// <summary>
    /// Where the next group goes in the staging ring, and how much room it has there: after the newest group, or from
    /// the start when that end cannot hold <paramref name="atLeast"/> and the oldest group still in use starts later.
    /// Everything from the oldest unconsumed slot's group to the newest group's end is in use.
    /// </summary>
    private int FreeRunStart(long atLeast, out long room)
    {
        long capacity = _gatherer.PrefetchElements;
        if (_prefetched.Count == 0)
        {
            room = capacity;
            return 0;
        }
        int head = _prefetched.Peek().Group;
        if (_stagingTail > head)
        {
            room = capacity - _stagingTail;
            if (room >= atLeast) return _stagingTail;
            room = head; // wrap around, before the oldest group
            return 0;
        }
        room = head - _stagingTail; // wrapped already: up to the oldest group
        return _stagingTail;
    }
}
