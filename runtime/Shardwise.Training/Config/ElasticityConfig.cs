using System.Collections.Generic;
using System.Linq;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// The "elasticity" section (DeepSpeed's elastic training, deepspeed/elasticity/config.py): the run's global batch,
/// micro-batch and accumulation come from <see cref="Elasticity.ElasticBatch"/> for the data-parallel size it starts on,
/// so the same job can resume on any of the valid sizes with the same batch (Shardwise's checkpoints already load on any
/// rank count). Read only when enabled.
/// </summary>
public sealed record ElasticityConfig
{
    public const string SectionPath = "$.elasticity";
    public const string Version01 = "0.1";
    public const string Version02 = "0.2";

    public required int MaxTrainBatchSize { get; init; }

    public required IReadOnlyList<int> MicroBatchSizes { get; init; }

    public int MinGpus { get; init; } = 1;

    public int MaxGpus { get; init; } = 10000;

    /// <summary>min_time: the scheduler's minimum minutes between rescalings; informational here.</summary>
    public int MinTime { get; init; }

    /// <summary>"0.1" or "0.2" (DeepSpeed's default, its latest).</summary>
    public string Version { get; init; } = Version02;

    public bool PreferLargerBatch { get; init; } = true;

    /// <summary>Whether train_batch_size and friends beside the section are overridden instead of refused.</summary>
    public bool IgnoreNonElasticBatchInfo { get; init; }

    public int ModelParallelSize { get; init; } = 1;

    public int NumGpusPerNode { get; init; } = 1;

    internal static ElasticityConfig? Read(JsonSection root)
    {
        var section = root.Section("elasticity");
        if (section.Bool("enabled") != true)
        {
            section.SkipRest();
            return null;
        }
        int? max = section.Int32("max_train_batch_size", AutoRule.NotAllowed, min: 1);
        if (max is null) section.Diagnostics.ErrorSentence(section.PathOf("max_train_batch_size"), "is required when elasticity is enabled (DeepSpeed raises too)");
        var micro = ReadMicroBatchSizes(section, max);
        string version = ReadVersion(section);
        var config = new ElasticityConfig
        {
            MaxTrainBatchSize = max ?? 1,
            MicroBatchSizes = micro,
            MinGpus = section.Int32("min_gpus", AutoRule.NotAllowed, min: 1) ?? 1,
            MaxGpus = section.Int32("max_gpus", AutoRule.NotAllowed, min: 1) ?? 10000,
            MinTime = section.Int32("min_time", AutoRule.NotAllowed, min: 0) ?? 0,
            Version = version,
            PreferLargerBatch = section.Bool("prefer_larger_batch") ?? true,
            IgnoreNonElasticBatchInfo = section.Bool("ignore_non_elastic_batch_info") ?? false,
            ModelParallelSize = section.Int32("model_parallel_size", AutoRule.NotAllowed, min: 1) ?? 1,
            NumGpusPerNode = section.Int32("num_gpus_per_node", AutoRule.NotAllowed, min: 1) ?? 1,
        };
        if (config.MinGpus > config.MaxGpus) section.Error("min_gpus", $"{config.MinGpus} is above max_gpus ({config.MaxGpus})");
        if (config.ModelParallelSize > 1 && version == Version01)
            section.Error("model_parallel_size", $"{config.ModelParallelSize}: elasticity version 0.1 does not support model parallelism; use \"version\": 0.2");
        if (config.NumGpusPerNode % config.ModelParallelSize != 0)
            section.Error("num_gpus_per_node", $"{config.NumGpusPerNode} is not a multiple of model_parallel_size ({config.ModelParallelSize}): version 0.2 places whole model-parallel groups on a node");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }

    private static List<int> ReadMicroBatchSizes(JsonSection section, int? max)
    {
        const string Key = "micro_batch_sizes";
        if (!section.TryTake(Key, out var value))
        {
            section.Diagnostics.ErrorSentence(section.PathOf(Key), "is required when elasticity is enabled (a list of positive micro-batch sizes)");
            return [1];
        }
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            section.Error(Key, $"expected a non-empty list of positive integers, found {JsonSection.Describe(value)}");
            return [1];
        }
        var sizes = new List<int>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int size) && size >= 1)
            {
                if (max is { } limit && size > limit) section.Error($"{Key}[{index}]", $"{size} is above max_train_batch_size ({limit})");
                sizes.Add(size);
            }
            else section.Error($"{Key}[{index}]", $"expected a positive integer, found {JsonSection.Describe(item)}");
            index++;
        }
        return sizes.Count == 0 ? [1] : sizes;
    }

    private static string ReadVersion(JsonSection section)
    {
        if (!section.TryTake("version", out var value)) return Version02;
        string? text = value.ValueKind switch
        {
            JsonValueKind.Number => value.GetDouble() switch { 0.1 => Version01, 0.2 => Version02, _ => null },
            JsonValueKind.String => value.GetString() is Version01 or Version02 ? value.GetString() : null,
            _ => null,
        };
        if (text is null) section.Error("version", $"{JsonSection.Describe(value)}: elasticity versions are 0.1 and 0.2");
        return text ?? Version02;
    }
}
