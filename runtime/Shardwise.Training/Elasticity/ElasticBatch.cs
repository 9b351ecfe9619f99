using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Training.Config;

namespace Shardwise.Training.Elasticity;

/// <summary>What elastic training fixes for a run: the global batch, the data-parallel sizes it allows, and this run's micro-batch.</summary>
/// <param name="ValidDataParallelSizes">The data-parallel sizes (GPU counts over the model-parallel size) the batch divides into.</param>
public sealed record ElasticBatchChoice(int TrainBatchSize, IReadOnlyList<int> ValidDataParallelSizes, int MicroBatchPerGpu);

/// <summary>
/// DeepSpeed's elasticity (deepspeed/elasticity/elasticity.py): one global batch that a range of GPU counts can all
/// train with, by gradient accumulation, so a job may be rescheduled on another count without changing its convergence.
/// Version 0.1 scales each micro-batch size and their least common multiple by the largest highly composite number that
/// keeps it under max_train_batch_size, and keeps the candidate that the most GPU counts in [min_gpus, max_gpus] divide
/// (ties: the larger batch, or the smaller with prefer_larger_batch false); version 0.2 does the same per node of
/// data-parallel ranks, and for a world size outside its list falls back to the largest multiple of one micro-batch
/// per rank under the maximum. The micro-batch is the largest listed size that divides the per-rank batch.
/// </summary>
public static class ElasticBatch
{
    /// <summary>The smallest highly composite numbers (DeepSpeed's list: enough for batches up to 720,720).</summary>
    private static readonly int[] HighlyComposite =
    [
        1, 2, 4, 6, 12, 24, 36, 48, 60, 120, 180, 240, 360, 720, 840, 1260, 1680, 2520, 5040, 7560, 10080, 15120, 20160,
        25200, 27720, 45360, 50400, 55440, 83160, 110880, 166320, 221760, 277200, 332640, 498960, 554400, 665280, 720720,
    ];

    /// <summary>Version 0.1's batch and the GPU counts it allows, before any world size is known.</summary>
    public static (int TrainBatchSize, IReadOnlyList<int> ValidGpus) Compatible(IReadOnlyList<int> microBatches, int maxBatch, int minGpus, int maxGpus, bool preferLarger)
    {
        if (microBatches.Any(m => m > maxBatch))
            throw new ArgumentException($"every micro-batch size must be at most max_train_batch_size ({maxBatch}); got {string.Join(", ", microBatches)}");
        var bases = microBatches.Append(microBatches.Aggregate(LeastCommonMultiple)).ToList();
        var candidates = bases.Select(b => LargestUnder(b, maxBatch)).Distinct().ToList();
        int best = microBatches.Min();
        IReadOnlyList<int> bestGpus = [];
        int bestCount = 0;
        foreach (int batch in candidates)
        {
            var gpus = ValidGpus(batch, microBatches, minGpus, maxGpus);
            bool better = gpus.Count > bestCount
                || (gpus.Count == bestCount && (preferLarger ? batch > best : batch < best));
            if (!better) continue;
            (best, bestGpus, bestCount) = (batch, gpus, gpus.Count);
        }
        return (best, bestGpus);
    }

    /// <summary>The choice for a run on <paramref name="dataParallelSize"/> ranks; throws <see cref="ArgumentException"/> when the size is not allowed.</summary>
    public static ElasticBatchChoice For(ElasticityConfig config, int dataParallelSize)
    {
        var micro = config.MicroBatchSizes;
        int batch;
        IReadOnlyList<int> valid;
        if (config.Version == ElasticityConfig.Version01)
        {
            (batch, valid) = Compatible(micro, config.MaxTrainBatchSize, config.MinGpus, config.MaxGpus, config.PreferLargerBatch);
        }
        else
        {
            // Version 0.2 counts nodes: each holds num_gpus_per_node / model_parallel_size data-parallel ranks.
            int perNode = config.NumGpusPerNode / config.ModelParallelSize;
            int gpus = dataParallelSize * config.ModelParallelSize;
            var (nodeBatch, nodes) = Compatible(micro, config.MaxTrainBatchSize / perNode, config.MinGpus / config.NumGpusPerNode,
                config.MaxGpus / config.NumGpusPerNode, config.PreferLargerBatch);
            batch = nodeBatch * perNode;
            valid = nodes.Select(n => n * perNode).ToList();
            if (!valid.Contains(gpus / config.ModelParallelSize))
            {
                // Outside the list: the largest multiple of one micro-batch per rank under the maximum (DeepSpeed's fallback).
                int ranks = gpus / config.NumGpusPerNode * perNode;
                var fallback = micro.Select(m => (long)m * ranks).Where(b => b > 0).Select(b => config.MaxTrainBatchSize / b * b).ToList();
                batch = (int)(config.PreferLargerBatch ? fallback.Max() : fallback.Min());
                valid = [ranks];
            }
        }
        if (!valid.Contains(dataParallelSize))
            throw new ArgumentException($"{dataParallelSize} data-parallel ranks cannot train the elastic batch of {batch}: " +
                                        $"the valid counts are {string.Join(", ", valid)}");
        // DeepSpeed recomputes it for the world size it is given: the largest size that divides the per-rank batch.
        int microBatch = LargestDividing(micro, batch / dataParallelSize)
            ?? throw new ArgumentException($"no micro-batch size of {string.Join(", ", micro)} divides {batch} / {dataParallelSize} ranks");
        return new ElasticBatchChoice(batch, valid, microBatch);
    }

    /// <summary>GPU counts in [min, max] for which batch / count is a multiple of some micro-batch size.</summary>
    private static List<int> ValidGpus(int batch, IReadOnlyList<int> microBatches, int minGpus, int maxGpus)
    {
        var valid = new SortedSet<int>();
        foreach (int micro in microBatches)
        {
            if (batch % micro != 0) continue;
            int most = batch / micro;
            if (most >= minGpus && most <= maxGpus) valid.Add(most);
            for (int gpus = 1; gpus <= most / 2; gpus++)
            {
                if (most % gpus == 0 && gpus >= minGpus && gpus <= maxGpus) valid.Add(gpus);
            }
        }
        return valid.ToList();
    }

    /// <summary>The largest base · h, h highly composite, at most <paramref name="max"/> (the base itself if none is).</summary>
    private static int LargestUnder(int value, int max)
    {
        int batch = value;
        foreach (int h in HighlyComposite)
        {
            long scaled = (long)value * h;
            if (scaled > max) break;
            batch = (int)scaled;
        }
        return batch;
    }

    private static int? LargestDividing(IReadOnlyList<int> microBatches, int perRank)
    {
        var dividing = microBatches.Where(m => perRank % m == 0).ToList();
        return dividing.Count == 0 ? null : dividing.Max();
    }

    private static int LeastCommonMultiple(int a, int b) => a / GreatestCommonDivisor(a, b) * b;

    private static int GreatestCommonDivisor(int a, int b) => b == 0 ? a : GreatestCommonDivisor(b, a % b);
}
