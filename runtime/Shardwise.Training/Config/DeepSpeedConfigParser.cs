using System.Linq;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// Builds a <see cref="DeepSpeedConfig"/> from JSON. Each section reads itself (its record's Read method);
/// this class owns the top level and the checks that span sections. All errors are collected first and
/// thrown together.
/// </summary>
internal static class DeepSpeedConfigParser
{
    public static ConfigLoadResult Parse(string json, string sourceName, ConfigOverrides overrides)
    {
        using var document = ConfigJson.Parse(json, sourceName);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new ConfigException(sourceName, [$"$: the top level must be a JSON object, found {JsonSection.Describe(document.RootElement)}"]);
        }

        var diagnostics = new ConfigDiagnostics();
        var root = new JsonSection(document.RootElement, "$", diagnostics);
        // Lists in train_micro_batch_size_per_gpu and zero_optimization.stage are autotuning's search space.
        bool tuning = AutotuningConfig.IsEnabled(document.RootElement);
        var config = new DeepSpeedConfig
        {
            SourceName = sourceName,

            // Hugging Face sets train_batch_size "auto" to micro × GAS × world size: exactly what the batch rule infers.
            TrainBatchSize = root.Int32("train_batch_size", AutoRule.TreatAsAbsent, min: 1),
            MicroBatchPerGpu = root.Int32OrCandidates("train_micro_batch_size_per_gpu", AutoRule.FromCaller(overrides.MicroBatchPerGpu, "pass --micro-batch"), tuning, out var microCandidates, min: 1),
            MicroBatchCandidates = microCandidates,
            GradientAccumulationSteps = root.Int32("gradient_accumulation_steps", AutoRule.FromCaller(overrides.GradientAccumulationSteps, "pass --gradient-accumulation-steps"), min: 1),
            Optimizer = OptimizerConfig.Read(root, overrides),
            Scheduler = SchedulerConfig.Read(root, overrides),
            Fp16 = Fp16Config.Read(root, overrides),
            Bf16 = Bf16Config.Read(root, overrides),
            ZeroOptimization = ZeroOptimizationConfig.Read(root, overrides, tuning),
            GradientClipping = root.Number("gradient_clipping", AutoRule.FromCaller(overrides.GradientClipping, "pass --max-grad-norm")) ?? ConfigDefaults.GradientClipping,
            GradientCommunication = GradientCommunicationConfig.Read(root),
            ActivationCheckpointing = ActivationCheckpointingConfig.Read(root),
            Pipeline = PipelineConfig.Read(root),
            StepsPerPrint = root.Int32("steps_per_print", AutoRule.NotAllowed, min: 1) ?? ConfigDefaults.StepsPerPrint,
            WallClockBreakdown = root.Bool("wall_clock_breakdown") ?? ConfigDefaults.WallClockBreakdown,
            MemoryBreakdown = root.Bool("memory_breakdown") ?? ConfigDefaults.MemoryBreakdown,
            DumpState = root.Bool("dump_state") ?? ConfigDefaults.DumpState,
            FlopsProfiler = FlopsProfilerConfig.Read(root),
            CommsLogger = CommsLoggerConfig.Read(root),
            TensorBoard = MonitorConfig.Read(root, "tensorboard"),
            CsvMonitor = MonitorConfig.Read(root, "csv_monitor"),
            Checkpoint = CheckpointConfig.Read(root),
            SparseAttention = SparseAttentionConfig.Read(root),
            CurriculumLearning = ReadCurriculum(root, out var randomLtd),
            RandomLtd = randomLtd,
            ProgressiveLayerDrop = ProgressiveLayerDropConfig.Read(root),
            CompressionTraining = CompressionTrainingConfig.Read(root),
            TensorParallelSize = TensorParallelConfig.Read(root),
            Autotuning = AutotuningConfig.Read(root),
            Elasticity = ElasticityConfig.Read(root),
        };

        CheckAcrossSections(root, config);
        ReportKeysDeepSpeedIgnores(root);
        UnsupportedFeaturePolicy.ReportLeftovers(root, UnsupportedFeaturePolicy.TopLevel, UnsupportedFeaturePolicy.TopLevelAcceptedNoEffect);
        if (diagnostics.Errors.Count > 0)
        {
            throw new ConfigException(sourceName, diagnostics.Errors);
        }

        return new ConfigLoadResult(config, diagnostics.Warnings);
    }

    /// <summary>
    /// The legacy curriculum_learning section or data_efficiency's seqlen_truncate metric: one curriculum, not both; and
    /// data_efficiency's random-LTD, read with it.
    /// </summary>
    private static CurriculumLearningConfig? ReadCurriculum(JsonSection root, out RandomLtdConfig? randomLtd)
    {
        var legacy = CurriculumLearningConfig.Read(root);
        (var library, randomLtd) = DataEfficiencyConfig.Read(root);
        if (legacy is not null && library is not null)
        {
            root.Diagnostics.ErrorSentence("$.data_efficiency.data_sampling.curriculum_learning", "asks for a sequence-length curriculum and so does $.curriculum_learning: keep one of them");
        }

        return legacy ?? library;
    }

    /// <summary>
    /// Keys that public configs carry but DeepSpeed itself never reads (LLaMA-Factory's, in ../shared/ds_configs/26_*):
    /// its monitors are the top-level tensorboard, csv_monitor, wandb and comet sections, and its communication log is
    /// comms_logger. A warning says so, so nobody expects the monitors inside to run.
    /// </summary>
    private static void ReportKeysDeepSpeedIgnores(JsonSection root)
    {
        if (root.TryTake("monitor_config", out var monitors))
        {
            string enabled = monitors.ValueKind == JsonValueKind.Object
                ? string.Join(", ", monitors.EnumerateObject()
                    .Where(m => m.Value.ValueKind == JsonValueKind.Object && m.Value.TryGetProperty("enabled", out var on) && on.ValueKind == JsonValueKind.True)
                    .Select(m => m.Name))
                : "";
            root.Warning("monitor_config", "DeepSpeed does not read this key (its monitors are the top-level tensorboard, csv_monitor, wandb and comet sections), and neither does Shardwise: nothing inside it runs"
                + (enabled.Length > 0 ? $"; to enable {enabled}, move it to the top level" : ""));
        }
        if (root.TryTake("comms_config", out _))
            root.Warning("comms_config", "DeepSpeed does not read this key (its communication log is the top-level comms_logger section), and neither does Shardwise; ignored");
    }

    private static void CheckAcrossSections(JsonSection root, DeepSpeedConfig config)
    {
        if (config.Elasticity is { } elastic)
        {
            // DeepSpeed refuses batch keys beside elasticity unless told to ignore them: the section decides the batch.
            foreach (var (key, value) in new (string, int?)[] { ("train_batch_size", config.TrainBatchSize), ("train_micro_batch_size_per_gpu", config.MicroBatchPerGpu), ("gradient_accumulation_steps", config.GradientAccumulationSteps) })
            {
                if (value is null) continue;
                if (elastic.IgnoreNonElasticBatchInfo)
                    root.Diagnostics.Warning("$." + key, $"{value} is overridden by elasticity, which sets the batch for the data-parallel size the run starts on");
                else
                    root.Diagnostics.Error("$." + key, $"{value} is set beside an enabled elasticity section, which decides the batch itself: remove it, or set $.elasticity.ignore_non_elastic_batch_info to true (DeepSpeed refuses this too)");
            }
            if (config.Autotuning is not null)
                root.Diagnostics.Error("$.autotuning.enabled", "autotuning searches micro-batch sizes, and elasticity decides them: enable one of them");
        }

        if (config.Fp16.Enabled && config.Bf16.Enabled)
        {
            root.Diagnostics.Error("$.bf16.enabled", "fp16 and bf16 are both enabled; DeepSpeed rejects this too: enable one of them");
        }

        if (config.Optimizer?.Type == OptimizerType.Lamb && config.ZeroOptimization.Stage > 0)
        {
            root.Diagnostics.Error("$.zero_optimization.stage", $"{config.ZeroOptimization.Stage} partitions the optimizer over ranks, and Lamb's trust ratio needs whole parameter tensors: use stage 0 with Lamb (DeepSpeed refuses ZeRO with Lamb too, unless zero_allow_untested_optimizer is set)");
        }

        if (config.Optimizer is { } optimizer && optimizer.Type.IsOneBit() && config.ZeroOptimization.Stage > 0)
        {
            root.Diagnostics.Error("$.zero_optimization.stage", $"{config.ZeroOptimization.Stage} partitions the optimizer over ranks, and {optimizer.Type} averages whole momentum tensors with 1-bit compression on every rank: use stage 0 with {optimizer.Type}");
        }

        if (config.CurriculumLearning is not null && config.SparseAttention?.Attention == global::Shardwise.Sparsity.SparseAttentionDirection.Bidirectional)
        {
            root.Diagnostics.Error(config.CurriculumLearning.Source, "a sequence-length curriculum masks the targets past the current length, which equals truncating the sequences only under causal attention, and $.sparse_attention.attention is \"bidirectional\": switch one of them off");
        }

        if (!config.GradientCommunication.IsDefault && config.ZeroOptimization is { Stage: 3, QuantizedGradients: true })
        {
            string key = config.GradientCommunication.DataType is not null ? "communication_data_type"
                : config.GradientCommunication.PrescaleGradients ? "prescale_gradients" : "gradient_predivide_factor";
            root.Warning(key, "has no effect beside $.zero_optimization.zero_quantized_gradients: qgZ sends the gradients as int4 blocks, each with its own scale");
        }

        if (config.GradientClipping < 0 || double.IsNaN(config.GradientClipping))
        {
            root.Error("gradient_clipping", $"{JsonSection.Format(config.GradientClipping)} is out of range: must be >= 0 (0 = off)");
        }
    }
}
