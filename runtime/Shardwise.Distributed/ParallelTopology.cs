using System;
using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Distributed;

/// <summary>
/// How W ranks are laid out as data × pipeline × tensor parallel (W = d·p·t), in Megatron's order: the tensor rank
/// varies fastest (tensor groups are neighbours, on one node when possible, since they all-reduce inside every layer),
/// then the data rank, then the pipeline stage: world rank = stage·(d·t) + dataRank·t + tensorRank.
/// Pure rank arithmetic; the trainer splits the world into these groups (Shardwise.Training.Pipeline.ParallelGroups).
/// </summary>
public sealed record ParallelTopology
{
    public ParallelTopology(int worldSize, int pipeline, int tensor)
    {
        if (pipeline < 1) throw new ArgumentOutOfRangeException(nameof(pipeline), pipeline, "[Model(Pipeline = ...)] must be at least 1.");
        if (tensor < 1) throw new ArgumentOutOfRangeException(nameof(tensor), tensor, "[Model(Tensor = ...)] must be at least 1.");
        if (worldSize < 1 || worldSize % (pipeline * tensor) != 0)
        {
            throw new ArgumentException(
                $"the job has {worldSize} rank{(worldSize == 1 ? "" : "s")}, but the model is planned for [Model(Pipeline = {pipeline}, " +
                $"Tensor = {tensor})]: the number of ranks must be a multiple of Pipeline × Tensor = {pipeline * tensor} " +
                $"(W = data × {pipeline} × {tensor}); launch with mpirun -np {pipeline * tensor} (or a multiple).",
                nameof(worldSize));
        }
        WorldSize = worldSize;
        Pipeline = pipeline;
        Tensor = tensor;
        Data = worldSize / (pipeline * tensor);
    }

    public int WorldSize { get; }

    /// <summary>Pipeline stages (p).</summary>
    public int Pipeline { get; }

    /// <summary>Tensor-parallel degree (t).</summary>
    public int Tensor { get; }

    /// <summary>Data-parallel replicas (d = W / (p·t)).</summary>
    public int Data { get; }

    /// <summary>The world rank of (stage, data rank, tensor rank).</summary>
    public int WorldRank(int stage, int dataRank, int tensorRank)
    {
        CheckCoordinates(stage, dataRank, tensorRank);
        return (stage * Data + dataRank) * Tensor + tensorRank;
    }

    /// <summary>The coordinates of a world rank.</summary>
    public RankCoordinates Coordinates(int worldRank)
    {
        if (worldRank < 0 || worldRank >= WorldSize)
            throw new ArgumentOutOfRangeException(nameof(worldRank), worldRank, $"world ranks are 0..{WorldSize - 1}");
        return new RankCoordinates(worldRank / (Data * Tensor), worldRank / Tensor % Data, worldRank % Tensor);
    }

    /// <summary>The ranks that split one layer's tensors: same stage and data rank, by tensor rank.</summary>
    public int[] TensorGroup(int worldRank)
    {
        var (stage, data, _) = Coordinates(worldRank);
        return Enumerable.Range(0, Tensor).Select(t => WorldRank(stage, data, t)).ToArray();
    }

    /// <summary>The replicas of one model shard, whose gradients are averaged: same stage and tensor rank, by data rank.</summary>
    public int[] DataGroup(int worldRank)
    {
        var (stage, _, tensor) = Coordinates(worldRank);
        return Enumerable.Range(0, Data).Select(d => WorldRank(stage, d, tensor)).ToArray();
    }

    /// <summary>One pipeline: same data and tensor rank, by stage (activations and gradients move between neighbours).</summary>
    public int[] PipelineGroup(int worldRank)
    {
        var (_, data, tensor) = Coordinates(worldRank);
        return Enumerable.Range(0, Pipeline).Select(s => WorldRank(s, data, tensor)).ToArray();
    }

    /// <summary>
    /// Every rank of one data replica, by (stage, tensor rank): together they hold the whole model once, so the global
    /// gradient norm and the fp16 overflow check reduce over this group.
    /// </summary>
    public int[] ModelParallelGroup(int worldRank)
    {
        var (_, data, _) = Coordinates(worldRank);
        var ranks = new List<int>();
        for (int s = 0; s < Pipeline; s++)
            for (int t = 0; t < Tensor; t++) ranks.Add(WorldRank(s, data, t));
        return ranks.ToArray();
    }

    /// <summary>The ranks holding a parameter tied across <paramref name="stages"/>: those stages, same data and tensor rank.</summary>
    public int[] TiedGroup(int worldRank, IReadOnlyList<int> stages)
    {
        var (_, data, tensor) = Coordinates(worldRank);
        return stages.OrderBy(s => s).Select(s => WorldRank(s, data, tensor)).ToArray();
    }

    private void CheckCoordinates(int stage, int dataRank, int tensorRank)
    {
        if (stage < 0 || stage >= Pipeline) throw new ArgumentOutOfRangeException(nameof(stage), stage, $"stages are 0..{Pipeline - 1}");
        if (dataRank < 0 || dataRank >= Data) throw new ArgumentOutOfRangeException(nameof(dataRank), dataRank, $"data ranks are 0..{Data - 1}");
        if (tensorRank < 0 || tensorRank >= Tensor) throw new ArgumentOutOfRangeException(nameof(tensorRank), tensorRank, $"tensor ranks are 0..{Tensor - 1}");
    }
}

/// <summary>Where a rank sits: its pipeline stage, its data-parallel replica and its tensor-parallel rank.</summary>
public readonly record struct RankCoordinates(int Stage, int DataRank, int TensorRank);
