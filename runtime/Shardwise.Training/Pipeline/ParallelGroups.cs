using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Distributed;
using Shardwise.Plans;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// The communicators one rank of a data × pipeline × tensor job uses, split from the world by
/// <see cref="ParallelTopology"/>: its tensor group (Megatron's all-reduces inside layers), its data group (gradient
/// averaging and ZeRO), its pipeline (activations and gradients to the neighbouring stages), its model-parallel group
/// (one whole replica: gradient norm and overflow) and one group per set of stages sharing tied parameters.
/// Every rank makes the same splits in the same order, so this is a collective over the world.
/// </summary>
public sealed class ParallelGroups : IDisposable
{
    private readonly List<ICommunicator> _owned = [];

    private ParallelGroups(ICommunicator world, ParallelTopology topology)
    {
        World = world;
        Topology = topology;
        Coordinates = topology.Coordinates(world.Rank);
    }

    public ICommunicator World { get; }

    public ParallelTopology Topology { get; }

    public RankCoordinates Coordinates { get; }

    public ICommunicator Tensor { get; private set; } = null!;

    public ICommunicator Data { get; private set; } = null!;

    /// <summary>This rank's pipeline; its rank in the group is the stage.</summary>
    public ICommunicator Pipeline { get; private set; } = null!;

    public ICommunicator ModelParallel { get; private set; } = null!;

    /// <summary>For each tied parameter this rank's stage holds, the group of its holders (same data and tensor rank).</summary>
    public IReadOnlyDictionary<string, ICommunicator> Tied { get; private set; } = new Dictionary<string, ICommunicator>();

    /// <summary>Splits <paramref name="world"/> into the groups of <paramref name="partition"/>'s degrees.</summary>
    public static ParallelGroups Create(ICommunicator world, ModelPartition partition)
    {
        var topology = new ParallelTopology(world.Size, partition.Pipeline, partition.Tensor);
        var groups = new ParallelGroups(world, topology);
        var (stage, data, tensor) = groups.Coordinates;
        int d = topology.Data, t = topology.Tensor;
        groups.Tensor = groups.Split(stage * d + data, tensor);
        groups.Data = groups.Split(stage * t + tensor, data);
        groups.Pipeline = groups.Split(data * t + tensor, stage);
        groups.ModelParallel = groups.Split(data, stage * t + tensor);

        // One group per distinct set of holder stages, in an order every rank computes alike. Ranks of other stages
        // join a group of their own (color past every replica's), since every rank must take part in every split.
        var holderSets = partition.Stages.SelectMany(s => s.Tied)
            .GroupBy(tied => string.Join(",", tied.Stages.OrderBy(x => x)), StringComparer.Ordinal)
            .OrderBy(set => set.Key, StringComparer.Ordinal)
            .ToArray();
        var tied = new Dictionary<string, ICommunicator>(StringComparer.Ordinal);
        foreach (var set in holderSets)
        {
            bool holder = set.First().Stages.Contains(stage);
            ICommunicator group = groups.Split(holder ? data * t + tensor : d * t + world.Rank, stage);
            if (!holder) continue;
            foreach (TiedParameter parameter in set) tied[parameter.Name] = group;
        }
        groups.Tied = tied;
        return groups;
    }

    /// <summary>The world rank of rank <paramref name="pipelineRank"/> of this rank's pipeline (for error messages).</summary>
    public int WorldRankOfStage(int pipelineRank) => Topology.WorldRank(pipelineRank, Coordinates.DataRank, Coordinates.TensorRank);

    /// <summary>Disposes the split groups (the world belongs to the caller).</summary>
    public void Dispose()
    {
        foreach (ICommunicator group in _owned) group.Dispose();
        _owned.Clear();
    }

    private ICommunicator Split(int color, int key)
    {
        ICommunicator group = World.Split(color, key);
        _owned.Add(group);
        return group;
    }
}
