using System.Linq;

namespace Shardwise.Training.Config;

/// <summary>
/// The "data_efficiency" section (DeepSpeed's data efficiency library, deepspeed/runtime/data_pipeline) as far as
/// Shardwise implements it: data sampling's curriculum on the <c>seqlen_truncate</c> metric, which is the legacy
/// sequence-length curriculum in the library's spelling (its sampler advances the same CurriculumScheduler once per
/// global batch, and Megatron truncates every sequence to the difficulty), and data routing's random-LTD
/// (<see cref="RandomLtdConfig"/>). Metrics that rank samples need the data analyzer's offline index: errors naming
/// their path. A section, or a part of it, switched off is read no further, as DeepSpeed reads it.
/// </summary>
internal static class DataEfficiencyConfig
{
    public const string SequenceLengthMetric = "seqlen_truncate";

    /// <summary>The curriculum and the random-LTD the section asks for; null for each part that is absent or off.</summary>
    public static (CurriculumLearningConfig? Curriculum, RandomLtdConfig? RandomLtd) Read(JsonSection root)
    {
        var section = root.Section("data_efficiency");
        if (section.Bool("enabled") != true)
        {
            section.SkipRest();
            return (null, null);
        }

        if (section.TryTake("seed", out _))
            section.Warning("seed", "the library's sampling seed; the trainer's --seed orders the data");
        var randomLtd = ReadRouting(section.Section("data_routing"));
        var curriculum = ReadSampling(section.Section("data_sampling"));
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return (curriculum, randomLtd);
    }

    private static RandomLtdConfig? ReadRouting(JsonSection routing)
    {
        if (routing.Bool("enabled") != true)
        {
            routing.SkipRest();
            return null;
        }

        var randomLtd = RandomLtdConfig.Read(routing);
        UnsupportedFeaturePolicy.ReportLeftovers(routing);
        return randomLtd;
    }

    private static CurriculumLearningConfig? ReadSampling(JsonSection sampling)
    {
        if (sampling.Bool("enabled") != true)
        {
            sampling.SkipRest();
            return null;
        }

        foreach (string key in new[] { "num_epochs", "num_workers", "pin_memory" })
        {
            if (sampling.TryTake(key, out _))
                sampling.Warning(key, "DeepSpeed data loader option with no effect here (the Shardwise trainer owns data loading)");
        }

        var curriculum = sampling.Section("curriculum_learning");
        CurriculumLearningConfig? schedule = null;
        if (curriculum.Bool("enabled") == true)
        {
            curriculum.TryTake("data_cluster_path", out _); // where the library keeps its clusters; nothing to cluster for seqlen_truncate
            var metrics = curriculum.Section("curriculum_metrics");
            foreach (var (name, _) in metrics.Leftovers().ToList())
            {
                if (name != SequenceLengthMetric)
                {
                    metrics.TryTake(name, out _);
                    metrics.Error(name, UnsupportedFeaturePolicy.ErrorMessage($"curriculum metric \"{name}\" (it ranks samples by the data analyzer's offline index)",
                        $"use {SequenceLengthMetric}, or the legacy curriculum_learning section with curriculum_type \"seqlen\""));
                    continue;
                }

                var metric = metrics.Section(name);
                foreach (string ignored in new[] { "index_to_sample_path", "index_to_metric_path", "clustering_type" })
                    metric.TryTake(ignored, out _); // seqlen_truncate ranks nothing: the library does not read them either
                if (metric.String("difficulty_type") is { } type && type != "value")
                    metric.Error("difficulty_type", $"\"{type}\" is not supported for {SequenceLengthMetric}: its difficulty is a length (\"value\")");
                schedule = CurriculumLearningConfig.ReadSchedule(metric);
                UnsupportedFeaturePolicy.ReportLeftovers(metric);
            }

            UnsupportedFeaturePolicy.ReportLeftovers(metrics);
            UnsupportedFeaturePolicy.ReportLeftovers(curriculum);
        }
        else
        {
            curriculum.SkipRest();
        }

        UnsupportedFeaturePolicy.ReportLeftovers(sampling);
        return schedule;
    }
}
