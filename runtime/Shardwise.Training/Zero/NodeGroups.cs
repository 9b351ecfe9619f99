using System;
using Shardwise.Distributed;
using Shardwise.Training.Config;

namespace Shardwise.Training.Zero;

/// <summary>
/// ZeRO++'s picture of the machine: the data-parallel ranks cut into nodes of k consecutive ranks
/// (zero_hpz_partition_size = k, DeepSpeed's advice being the GPUs per node). <see cref="Node"/> holds a node's k
/// ranks (hpZ's copy is partitioned over it; qgZ reduces within it first); <see cref="Across"/> holds the N/k ranks
/// that share this rank's place in their nodes, one per node (qgZ's second hop). Both are split from the world on
/// every rank in the same order, when the engine is built.
/// </summary>
public sealed class NodeGroups
{
    private NodeGroups(ICommunicator world, int ranksPerNode)
    {
        if (world.Size % ranksPerNode != 0)
            throw new ArgumentException($"zero_optimization.zero_hpz_partition_size = {ranksPerNode} must divide the data-parallel size {world.Size}");
        RanksPerNode = ranksPerNode;
        Node = world.Split(color: world.Rank / ranksPerNode, key: world.Rank);
        Across = world.Split(color: world.Rank % ranksPerNode, key: world.Rank);
    }

    /// <summary>The groups for ZeRO-3 with hpZ on several ranks; null otherwise.</summary>
    public static NodeGroups? For(ZeroOptimizationConfig zero, ICommunicator world)
        => zero.Stage == 3 && zero.HpzPartitionSize > 1 && world.Size > 1 ? new NodeGroups(world, zero.HpzPartitionSize) : null;

    public int RanksPerNode { get; }

    /// <summary>This rank's node: k ranks, ranked by world rank (owned by the world communicator, which disposes it).</summary>
    public ICommunicator Node { get; }

    /// <summary>One rank per node, those at this rank's place in theirs, ranked by node.</summary>
    public ICommunicator Across { get; }
}
