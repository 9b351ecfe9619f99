using System;
using Shardwise.Distributed;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO++'s hpZ (zero_hpz_partition_size = k): a second copy of the 16-bit parameters, partitioned over groups of k
/// consecutive ranks (a node) instead of over all N. Each forward gather of a slot leaves this rank's piece of that
/// copy behind (<see cref="Keep"/>); backward then gathers the slot within the group (<see cref="Sharding"/>,
/// <see cref="Gatherer"/>), so ZeRO-3's second gather never crosses nodes. Costs Σ ⌈slot/k⌉ elements per rank.
/// The copy holds exactly what the forward gather produced (after qwZ's rounding too), so backward computes with the
/// forward's weights. A slot's piece is valid until the parameters change (<see cref="Invalidate"/>, after a step or a
/// load); every rank keeps and invalidates the same slots at the same points, so they agree on where a gather reads.
/// </summary>
public sealed class SecondaryPartition : IOwnedPieces
{
    private readonly float[] _pieces;
    private readonly bool[] _held;

    /// <param name="node">This rank's node group (<see cref="NodeGroups.Node"/>): the copy is partitioned over it.</param>
    /// <param name="staging">The prefetch staging the primary gathers use: groups from either partition take turns in it.</param>
    public SecondaryPartition(ParameterLayout layout, ICommunicator node, GradientStreamingOps<float> ops, float[] staging)
    {
        Group = node;
        // A group's prefetch takes at most the staging it shares, so that bounds its send buffer too.
        Sharding = new SlotSharding(layout, Group, reduceBucketElements: 1, allgatherBucketElements: staging.LongLength, gathersDuringBackward: true,
            streamedGathersOnly: true);
        _pieces = new float[Sharding.OwnedLength];
        _held = new bool[layout.Slots.Count];
        Gatherer = new HostParameterGatherer(Sharding, ops, this, staging);
    }

    /// <summary>The k ranks of this rank's node group (owned by the world communicator, which disposes it).</summary>
    public ICommunicator Group { get; }

    /// <summary>The slots cut into k pieces, rank g of the group owning piece g.</summary>
    public SlotSharding Sharding { get; }

    /// <summary>Gathers within the group from the kept pieces.</summary>
    public HostParameterGatherer Gatherer { get; }

    /// <summary>The kept pieces and the group sharding's communication buffers.</summary>
    public long BufferBytes => _pieces.LongLength * sizeof(float) + Sharding.BufferBytes;

    /// <summary>Bytes world rank <paramref name="rank"/> holds for hpZ groups of <paramref name="groupSize"/> beside a prefetch staging of <paramref name="prefetchElements"/> (for plans).</summary>
    public static long BufferBytesOf(ParameterLayout layout, int groupSize, int rank, long prefetchElements)
        => SlotSharding.OwnedLengthOf(layout, groupSize, rank % groupSize) * sizeof(float)
           + SlotSharding.BufferBytesOf(layout, groupSize, 1, prefetchElements, gathersDuringBackward: true, streamedGathersOnly: true);

    /// <summary>Whether this rank's piece of <paramref name="slot"/> reflects the current parameters.</summary>
    public bool Holds(int slot) => _held[slot];

    /// <summary>Keeps this rank's group piece of <paramref name="slot"/> from the pool region a forward gather filled.</summary>
    public void Keep(int slot, Slice gathered)
    {
        var whole = Gatherer.Host(gathered);
        long chunk = Sharding.PieceLength(slot), length = Sharding.OwnedPieceLength(slot);
        whole.Slice((int)(Group.Rank * chunk), (int)length).CopyTo(_pieces.AsSpan((int)Sharding.OwnedOffset(slot), (int)length));
        _held[slot] = true;
    }

    /// <summary>The parameters changed: every slot's next backward gather must wait for a forward one again.</summary>
    public void Invalidate() => Array.Clear(_held);

    public ReadOnlySpan<float> Piece(int slot) => Sharding.OwnedPiece(_pieces, slot);
}
