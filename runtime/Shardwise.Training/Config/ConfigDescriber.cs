using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Shardwise.Training.Config;

/// <summary>
/// Prints the effective configuration for --print-config: every value Shardwise will actually use,
/// defaults and resolved "auto"s included, one "$.json.path = value" per line, sorted by path, so two
/// runs can be diffed and the user sees what "auto" or a missing key became.
/// </summary>
internal static class ConfigDescriber
{
    public static string Describe(DeepSpeedConfig config, int? dataParallelSize)
    {
        var lines = new SortedDictionary<string, string>(StringComparer.Ordinal);
        void Add(string path, object? value) => lines[path] = Format(value);

        if (dataParallelSize is { } dp)
        {
            var batch = config.Resolve(dp);
            Add("$.train_batch_size", batch.TrainBatchSize);
            Add("$.train_micro_batch_size_per_gpu", batch.MicroBatchPerGpu);
            Add("$.gradient_accumulation_steps", batch.GradientAccumulationSteps);
            Add("(data_parallel_size)", batch.DataParallelSize);
        }
        else
        {
            // Elasticity decides all three; otherwise a value not written is the batch rule's to infer.
            string Written(int? value) => config.Elasticity is not null ? "(decided by elasticity for the data-parallel size)"
                : value?.ToString(CultureInfo.InvariantCulture) ?? "(inferred by the batch rule)";
            Add("$.train_batch_size", Written(config.TrainBatchSize));
            Add("$.train_micro_batch_size_per_gpu", Written(config.MicroBatchPerGpu));
            Add("$.gradient_accumulation_steps", Written(config.GradientAccumulationSteps));
        }

        Add("$.gradient_clipping", config.GradientClipping);
        var wire = config.GradientCommunication;
        Add("$.communication_data_type", wire.DataTypeName ?? "(not set: fp32 on the host path, the gradients' storage type over NCCL)");
        Add("$.prescale_gradients", wire.PrescaleGradients);
        Add("$.gradient_predivide_factor", wire.PredivideFactor);
        Add("$.steps_per_print", config.StepsPerPrint);
        Add("$.wall_clock_breakdown", config.WallClockBreakdown);
        Add("$.memory_breakdown", config.MemoryBreakdown);
        Add("$.dump_state", config.DumpState);
        var profiler = config.FlopsProfiler;
        Add("$.flops_profiler.enabled", profiler.Enabled);
        if (profiler.Enabled)
        {
            Add("$.flops_profiler.profile_step", profiler.ProfileStep);
            Add("$.flops_profiler.module_depth", profiler.ModuleDepth);
            Add("$.flops_profiler.top_modules", profiler.TopModules);
            Add("$.flops_profiler.detailed", profiler.Detailed);
            Add("$.flops_profiler.output_file", profiler.OutputFile ?? "(none: the log only)");
            Add("$.flops_profiler.recompute_fwd_factor", profiler.RecomputeForwardFactor);
        }
        var comms = config.CommsLogger;
        Add("$.comms_logger.enabled", comms.Enabled);
        if (comms.Enabled)
        {
            Add("$.comms_logger.verbose", comms.Verbose);
            Add("$.comms_logger.prof_all", comms.ProfileAll);
            Add("$.comms_logger.prof_ops", "[" + string.Join(", ", comms.ProfileOperations) + "]");
        }
        foreach (var monitor in new[] { config.TensorBoard, config.CsvMonitor })
        {
            Add($"$.{monitor.Section}.enabled", monitor.Enabled);
            if (!monitor.Enabled) continue;
            Add($"$.{monitor.Section}.output_path", monitor.OutputPath.Length == 0 ? $"(the run's --output directory/{monitor.Section})" : monitor.OutputPath);
            Add($"$.{monitor.Section}.job_name", monitor.JobName);
        }
        DescribeOptimizer(config.Optimizer, Add);
        DescribeScheduler(config.Scheduler, Add);
        DescribePrecision(config, Add);
        DescribeZero(config.ZeroOptimization, Add);

        var ac = config.ActivationCheckpointing;
        Add("$.activation_checkpointing.partition_activations", ac.PartitionActivations);
        Add("$.activation_checkpointing.cpu_checkpointing", ac.CpuCheckpointing);
        Add("$.activation_checkpointing.contiguous_memory_optimization", ac.ContiguousMemoryOptimization);
        Add("$.activation_checkpointing.number_checkpoints", ac.NumberCheckpoints);
        Add("$.activation_checkpointing.synchronize_checkpoint_boundary", ac.SynchronizeCheckpointBoundary);
        Add("$.activation_checkpointing.profile", ac.Profile);

        var pipe = config.Pipeline;
        Add("$.pipeline.stages", pipe.Stages?.ToString(CultureInfo.InvariantCulture) ?? "auto");
        Add("$.pipeline.partition", pipe.Partition);
        Add("$.pipeline.seed_layers", pipe.SeedLayers);
        Add("$.pipeline.activation_checkpoint_interval", pipe.ActivationCheckpointInterval);
        Add("$.pipeline.pipe_partitioned", pipe.PipePartitioned);
        Add("$.pipeline.grad_partitioned", pipe.GradPartitioned);

        Add("$.checkpoint.tag_validation", config.Checkpoint.TagValidation);
        Add("$.checkpoint.load_universal", config.Checkpoint.LoadUniversal);
        Add("$.checkpoint.use_node_local_storage", config.Checkpoint.UseNodeLocalStorage);
        DescribeCurriculum(config.CurriculumLearning, Add);
        Add("$.progressive_layer_drop.enabled", config.ProgressiveLayerDrop.Enabled);
        if (config.ProgressiveLayerDrop.Enabled)
        {
            Add("$.progressive_layer_drop.theta", config.ProgressiveLayerDrop.Theta);
            Add("$.progressive_layer_drop.gamma", config.ProgressiveLayerDrop.Gamma);
        }
        DescribeRandomLtd(config.RandomLtd, Add);
        Add(CompressionTrainingConfig.SectionPath, config.CompressionTraining?.Describe() ?? "off");
        Add(ElasticityConfig.SectionPath, config.Elasticity is { } elastic
            ? $"version {elastic.Version}, max_train_batch_size {elastic.MaxTrainBatchSize}, micro_batch_sizes [{string.Join(", ", elastic.MicroBatchSizes)}], GPUs {elastic.MinGpus}–{elastic.MaxGpus}" +
              (elastic.ModelParallelSize > 1 ? $", model_parallel_size {elastic.ModelParallelSize}, num_gpus_per_node {elastic.NumGpusPerNode}" : "")
            : "off");
        Add("$.tensor_parallel.autotp_size", config.TensorParallelSize);
        DescribeAutotuning(config, Add);

        return string.Join(Environment.NewLine, lines.Select(pair => $"{pair.Key} = {pair.Value}"));
    }

    private static void DescribeOptimizer(OptimizerConfig? optimizer, Action<string, object?> add)
    {
        if (optimizer is null)
        {
            add("$.optimizer", "(none: supplied by the trainer)");
            return;
        }

        add("$.optimizer.type", optimizer.Type);
        add("$.optimizer.params.lr", optimizer.LearningRate);
        add("$.optimizer.params.betas", $"[{Format(optimizer.Beta1)}, {Format(optimizer.Beta2)}]");
        add("$.optimizer.params.eps", optimizer.Eps);
        add("$.optimizer.params.weight_decay", optimizer.WeightDecay);
        add("$.optimizer.params.bias_correction", optimizer.BiasCorrection);
        if (optimizer.Lamb is { } lamb)
        {
            add("$.optimizer.params.max_coeff", lamb.MaxCoeff);
            add("$.optimizer.params.min_coeff", lamb.MinCoeff);
            add("$.optimizer.params.eps_inside_sqrt", lamb.EpsInsideSqrt);
            if (optimizer.OneBitLamb is { } oneBitLamb)
            {
                add("$.optimizer.params.freeze_step", oneBitLamb.Compression.FreezeStep);
                add("$.optimizer.params.coeff_beta", oneBitLamb.CoeffBeta);
                add("$.optimizer.params.factor_max", oneBitLamb.FactorMax);
                add("$.optimizer.params.factor_min", oneBitLamb.FactorMin);
                add("$.optimizer.params.factor_threshold", oneBitLamb.FactorThreshold);
            }
            return;
        }

        if (optimizer.OneBit is { } oneBit) add("$.optimizer.params.freeze_step", oneBit.FreezeStep);
        if (optimizer.ZeroOneAdam is { } zeroOne)
        {
            add("$.optimizer.params.var_freeze_step", zeroOne.VarFreezeStep);
            add("$.optimizer.params.var_update_scaler", zeroOne.VarUpdateScaler);
            add("$.optimizer.params.local_step_scaler", zeroOne.LocalStepScaler);
            add("$.optimizer.params.local_step_clipper", zeroOne.LocalStepClipper);
        }
        add("$.optimizer.params.adam_w_mode", optimizer.AdamWMode);
        add("$.optimizer.params.torch_adam", optimizer.TorchAdam);
    }

    private static void DescribeScheduler(SchedulerConfig? scheduler, Action<string, object?> add)
    {
        if (scheduler is null)
        {
            add("$.scheduler", "(none: constant learning rate)");
            return;
        }

        add("$.scheduler.type", scheduler.Type);
        if (scheduler.OneCycle is { } cycle)
        {
            add("$.scheduler.params.cycle_min_lr", cycle.CycleMinLr);
            add("$.scheduler.params.cycle_max_lr", cycle.CycleMaxLr);
            add("$.scheduler.params.cycle_first_step_size", cycle.CycleFirstStepSize);
            add("$.scheduler.params.cycle_second_step_size", cycle.CycleSecondStepSize);
            add("$.scheduler.params.decay_step_size", cycle.DecayStepSize);
            add("$.scheduler.params.decay_lr_rate", cycle.DecayLrRate);
            add("$.scheduler.params.cycle_momentum", cycle.CycleMomentum);
            if (cycle.CycleMomentum)
            {
                add("$.scheduler.params.cycle_min_mom", cycle.CycleMinMom);
                add("$.scheduler.params.cycle_max_mom", cycle.CycleMaxMom);
                add("$.scheduler.params.decay_mom_rate", cycle.DecayMomRate);
                add("$.optimizer.params.betas[1] (while cycling)", OneCycleConfig.CycledBeta2);
            }

            return;
        }

        if (scheduler.LrRangeTest is { } range)
        {
            add("$.scheduler.params.lr_range_test_min_lr", range.MinLr);
            add("$.scheduler.params.lr_range_test_step_size", range.StepSize);
            add("$.scheduler.params.lr_range_test_step_rate", range.StepRate);
            add("$.scheduler.params.lr_range_test_staircase", range.Staircase);
            return;
        }

        add("$.scheduler.params.warmup_num_steps", scheduler.WarmupNumSteps);
        add("$.scheduler.params.warmup_type", scheduler.WarmupType.ToString().ToLowerInvariant());
        if (scheduler.Type == SchedulerType.WarmupCosineLR)
        {
            add("$.scheduler.params.warmup_min_ratio", scheduler.WarmupMinRatio);
            add("$.scheduler.params.cos_min_ratio", scheduler.CosMinRatio);
        }
        else
        {
            add("$.scheduler.params.warmup_min_lr", scheduler.WarmupMinLr);
            add("$.scheduler.params.warmup_max_lr", scheduler.WarmupMaxLr);
        }

        if (scheduler.TotalNumSteps is { } total)
        {
            add("$.scheduler.params.total_num_steps", total);
        }
    }

    private static void DescribePrecision(DeepSpeedConfig config, Action<string, object?> add)
    {
        var fp16 = config.Fp16;
        add("$.fp16.enabled", fp16.Enabled);
        add("$.fp16.auto_cast", fp16.AutoCast);
        add("$.fp16.loss_scale", fp16.LossScale);
        add("$.fp16.initial_scale_power", fp16.InitialScalePower);
        add("$.fp16.loss_scale_window", fp16.LossScaleWindow);
        add("$.fp16.hysteresis", fp16.Hysteresis);
        add("$.fp16.consecutive_hysteresis", fp16.ConsecutiveHysteresis);
        add("$.fp16.min_loss_scale", fp16.MinLossScale);
        add("$.bf16.enabled", config.Bf16.Enabled);
    }

    private static void DescribeZero(ZeroOptimizationConfig zero, Action<string, object?> add)
    {
        const string Z = "$.zero_optimization.";
        add(Z + "stage", zero.Stage);
        add(Z + "overlap_comm", zero.OverlapComm);
        add(Z + "contiguous_gradients", zero.ContiguousGradients);
        add(Z + "reduce_scatter", zero.ReduceScatter);
        add(Z + "allgather_partitions", zero.AllgatherPartitions);
        add(Z + "reduce_bucket_size", zero.ReduceBucketSize);
        add(Z + "allgather_bucket_size", zero.AllgatherBucketSize);
        add(Z + "stage3_prefetch_bucket_size", zero.Stage3PrefetchBucketSize);
        add(Z + "stage3_param_persistence_threshold", zero.Stage3ParamPersistenceThreshold);
        add(Z + "stage3_max_live_parameters", zero.Stage3MaxLiveParameters);
        add(Z + "stage3_max_reuse_distance", zero.Stage3MaxReuseDistance);
        add(Z + "stage3_gather_16bit_weights_on_model_save", zero.Stage3Gather16BitWeightsOnModelSave);
        add(Z + "sub_group_size", zero.SubGroupSize);
        add(Z + "elastic_checkpoint", zero.ElasticCheckpoint);
        add(Z + "round_robin_gradients", zero.RoundRobinGradients);
        add(Z + "zero_quantized_weights", zero.QuantizedWeights);
        add(Z + "zero_quantized_gradients", zero.QuantizedGradients);
        add(Z + "zero_hpz_partition_size", zero.HpzPartitionSize);
        DescribeOffload(Z + "offload_optimizer.", zero.OffloadOptimizer, forParameters: false, add);
        DescribeOffload(Z + "offload_param.", zero.OffloadParam, forParameters: true, add);
    }

    private static void DescribeOffload(string prefix, OffloadConfig offload, bool forParameters, Action<string, object?> add)
    {
        add(prefix + "device", offload.Device.ToString().ToLowerInvariant());
        if (!offload.IsEnabled)
        {
            return;
        }

        if (offload.Device == OffloadDevice.Nvme)
        {
            add(prefix + "nvme_path", offload.NvmePath);
            add(prefix + "pipeline_read", offload.PipelineRead);
            add(prefix + "pipeline_write", offload.PipelineWrite);
        }

        add(prefix + "pin_memory", offload.PinMemory);
        add(prefix + "buffer_count", offload.BufferCount);
        if (forParameters)
        {
            add(prefix + "buffer_size", offload.BufferSize);
            add(prefix + "max_in_cpu", offload.MaxInCpu);
        }
        else
        {
            add(prefix + "ratio", offload.Ratio);
            add(prefix + "fast_init", offload.FastInit);
        }
    }

    private static string Format(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "null",
    };

    private static void DescribeAutotuning(DeepSpeedConfig config, Action<string, object?> add)
    {
        const string A = "$.autotuning.";
        add(A + "enabled", config.Autotuning is not null);
        if (config.Autotuning is not { } tuning) return;
        add(A + "metric", AutotuningConfig.MetricName(tuning.Metric));
        add(A + "start_profile_step", tuning.StartProfileStep);
        add(A + "end_profile_step", tuning.EndProfileStep);
        add(A + "results_dir", tuning.ResultsDirectory);
        add(A + "min_train_micro_batch_size_per_gpu", tuning.MinMicroBatch);
        add(A + "max_train_micro_batch_size_per_gpu", tuning.MaxMicroBatch);
        add(A + "num_tuning_micro_batch_sizes", tuning.TuningMicroBatchSizes);
        add(A + "tuner_num_trials", tuning.MaxTrials);
        if (config.MicroBatchCandidates is { } micro) add("(autotuning: train_micro_batch_size_per_gpu candidates)", "[" + string.Join(", ", micro) + "]");
        if (config.ZeroOptimization.StageCandidates is { } stages) add("(autotuning: zero_optimization.stage candidates)", "[" + string.Join(", ", stages) + "]");
    }

    private static void DescribeCurriculum(CurriculumLearningConfig? curriculum, Action<string, object?> add)
    {
        const string C = "$.curriculum_learning.";
        add(C + "enabled", curriculum is not null);
        if (curriculum is null) return;
        add(C + "curriculum_type", "seqlen");
        add(C + "min_difficulty", curriculum.MinDifficulty);
        add(C + "max_difficulty", curriculum.MaxDifficulty);
        add(C + "schedule_type", CurriculumLearningConfig.ScheduleName(curriculum.ScheduleType));
        if (curriculum.ScheduleType == CurriculumScheduleType.FixedDiscrete)
        {
            add(C + "schedule_config.difficulty", "[" + string.Join(", ", curriculum.Difficulties) + "]");
            add(C + "schedule_config.max_step", "[" + string.Join(", ", curriculum.MaxSteps) + "]");
            return;
        }

        add(C + "schedule_config.total_curriculum_step", curriculum.TotalCurriculumStep);
        add(C + "schedule_config.difficulty_step", curriculum.DifficultyStep);
        if (curriculum.ScheduleType == CurriculumScheduleType.FixedRoot) add(C + "schedule_config.root_degree", curriculum.RootDegree);
    }

    private static void DescribeRandomLtd(RandomLtdConfig? ltd, Action<string, object?> add)
    {
        const string R = RandomLtdConfig.SectionPath + ".";
        add(R + "enabled", ltd is not null);
        if (ltd is null) return;
        add(R + "total_layer_num", ltd.TotalLayerNum);
        add(R + "random_ltd_layer_num", ltd.LayerIds.Count);
        add(R + "random_ltd_layer_id", "[" + string.Join(", ", ltd.LayerIds) + "]");
        if (ltd.ModelMaskName is { } mask) add(R + "model_mask_name", mask);
        add(R + "model_type", "decoder");
        add(R + "hidden_state_order", ltd.HiddenStateOrder == RandomLtdHiddenStateOrder.SeqBatchDim ? "seq_batch_dim" : "batch_seq_dim");
        add(R + "random_ltd_schedule.min_value", ltd.MinValue);
        add(R + "random_ltd_schedule.max_value", ltd.MaxValue);
        add(R + "random_ltd_schedule.schedule_type", RandomLtdConfig.FixedLinear);
        add(R + "random_ltd_schedule.schedule_config.require_steps", ltd.RequireSteps);
        add(R + "random_ltd_schedule.schedule_config.seq_per_step", ltd.SeqPerStep);
        add(R + "layer_token_lr_schedule.enabled", false);
    }
}
