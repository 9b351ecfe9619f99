using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;

namespace Shardwise.Training.Tests;

[TestClass]
public sealed class ConfigParsingTests
{
    private static ConfigLoadResult Parse(string json, ConfigOverrides? overrides = null) =>
        DeepSpeedConfig.Parse(json, "test.json", overrides);

    private static ConfigException Fails(string json, ConfigOverrides? overrides = null) =>
        Assert.ThrowsExactly<ConfigException>(() => Parse(json, overrides));

    private static void AssertWarning(ConfigLoadResult result, string expected) =>
        Assert.IsTrue(result.Warnings.Contains(expected), $"missing warning \"{expected}\"; got:\n{string.Join("\n", result.Warnings)}");

    [TestMethod]
    public void Defaults_ComeFromOnePlace()
    {
        var result = Parse("""{"train_batch_size": 8}""");
        var config = result.Config;
        Assert.AreEqual(0, result.Warnings.Count);
        Assert.AreEqual(ConfigDefaults.StepsPerPrint, config.StepsPerPrint);
        Assert.AreEqual(10, config.StepsPerPrint);
        Assert.AreEqual(0.0, config.GradientClipping);
        Assert.AreEqual(0, config.ZeroOptimization.Stage);
        Assert.IsFalse(config.ZeroOptimization.OverlapComm);
        Assert.AreEqual(50_000_000, config.ZeroOptimization.Stage3PrefetchBucketSize);
        Assert.IsFalse(config.Fp16.Enabled);
        Assert.AreEqual(2, config.Fp16.Hysteresis);
        Assert.AreEqual(65536.0, config.Fp16.InitialScale);
        Assert.IsNull(config.Optimizer);
        Assert.IsNull(config.Scheduler);
        Assert.IsNull(config.Pipeline.Stages);
        Assert.AreEqual(TagValidation.Warn, config.Checkpoint.TagValidation);
    }

    [TestMethod]
    public void OverlapComm_DefaultsToTrueOnlyAtStage3()
    {
        Assert.IsTrue(Parse("""{"train_batch_size": 8, "zero_optimization": {"stage": 3}}""").Config.ZeroOptimization.OverlapComm);
        Assert.IsFalse(Parse("""{"train_batch_size": 8, "zero_optimization": {"stage": 2}}""").Config.ZeroOptimization.OverlapComm);
        Assert.IsFalse(Parse("""{"train_batch_size": 8, "zero_optimization": {"stage": 3, "overlap_comm": false}}""").Config.ZeroOptimization.OverlapComm);
    }

    [TestMethod]
    public void IntegralFloats_AreAcceptedForIntegerKeys()
    {
        var config = Parse("""{"train_batch_size": 8, "steps_per_print": 1e5, "zero_optimization": {"stage": 2, "reduce_bucket_size": 5e8, "allgather_bucket_size": 2e8}}""").Config;
        Assert.AreEqual(100000, config.StepsPerPrint);
        Assert.AreEqual(500_000_000L, config.ZeroOptimization.ReduceBucketSize);
        Assert.AreEqual(200_000_000L, config.ZeroOptimization.AllgatherBucketSize);
    }

    [TestMethod]
    public void FractionalFloat_ForIntegerKey_NamesThePath()
    {
        var error = Fails("""{"train_batch_size": 8, "zero_optimization": {"stage": 2.5}}""");
        StringAssert.Contains(error.Message, "$.zero_optimization.stage: expected an integer, found 2.5");
        StringAssert.Contains(error.Message, "test.json");
    }

    [TestMethod]
    public void TypeErrors_NameThePathAndWhatWasFound()
    {
        var error = Fails("""{"train_micro_batch_size_per_gpu": {"value": 8}, "wall_clock_breakdown": "yes"}""");
        Assert.AreEqual(2, error.Errors.Count, error.Message);
        StringAssert.Contains(error.Message, "$.train_micro_batch_size_per_gpu: expected a number, found an object");
        StringAssert.Contains(error.Message, "$.wall_clock_breakdown: expected true or false, found the string \"yes\"");
    }

    [TestMethod]
    public void UnknownKeys_WarnWithPathAndSuggestion()
    {
        var result = Parse("""
            {"train_batch_size": 8, "bp16": {"enabled": true}, "my_app_setting": 3,
             "zero_optimization": {"stage": 3, "stage3_param_persitence_threshold": 1e5, "gather_16bit_weights_on_model_save": true},
             "fp16": {"enabled": true, "opt_level": "O2"}}
            """);
        AssertWarning(result, "$.bp16: unknown key, ignored (did you mean \"bf16\"?)");
        AssertWarning(result, "$.my_app_setting: unknown key, ignored");
        AssertWarning(result, "$.zero_optimization.stage3_param_persitence_threshold: unknown key, ignored (did you mean \"stage3_param_persistence_threshold\"?)");
        AssertWarning(result, "$.zero_optimization.gather_16bit_weights_on_model_save: unknown key, ignored (did you mean \"stage3_gather_16bit_weights_on_model_save\"?)");
        AssertWarning(result, "$.fp16.opt_level: unknown key, ignored");
        Assert.IsFalse(result.Config.Bf16.Enabled, "a typo'd section must not switch anything on");
    }

    [TestMethod]
    public void KnownUnsupported_LoggingOnly_IsAWarning()
    {
        var result = Parse("""{"train_batch_size": 8, "comet": {"enabled": true}, "wandb": {"enabled": true}}""");
        AssertWarning(result, "$.comet: known DeepSpeed feature not supported by Shardwise yet: Comet monitoring; ignored");
        AssertWarning(result, "$.wandb: known DeepSpeed feature not supported by Shardwise yet: Weights & Biases monitoring; ignored");
    }

    [TestMethod]
    public void KnownUnsupported_ChangingResults_IsAnError_UnlessSwitchedOff()
    {
        var error = Fails("""{"train_batch_size": 8, "hybrid_engine": {"enabled": true}}""");
        StringAssert.Contains(error.Message, "$.hybrid_engine: known DeepSpeed feature not supported by Shardwise yet: hybrid engine (RLHF generation)");

        var result = Parse("""{"train_batch_size": 8, "hybrid_engine": {"enabled": false}}""");
        AssertWarning(result, "$.hybrid_engine: known DeepSpeed feature not supported by Shardwise yet: hybrid engine (RLHF generation) (switched off here); ignored");
    }

    [TestMethod]
    public void ProgressiveLayerDrop_IsRead_WithDeepSpeedsDefaults_AndItsRangesChecked()
    {
        var config = Parse("""{"train_batch_size": 8, "progressive_layer_drop": {"enabled": true, "theta": 0.5}}""").Config.ProgressiveLayerDrop;
        Assert.AreEqual((true, 0.5, 0.001), (config.Enabled, config.Theta, config.Gamma), "gamma defaults to DeepSpeed's 0.001");
        Assert.IsFalse(Parse("""{"train_batch_size": 8}""").Config.ProgressiveLayerDrop.Enabled);
        StringAssert.Contains(Parse("""{"train_batch_size": 8, "progressive_layer_drop": {"enabled": true, "theta": 0.5, "gamma": 0.01}}""").Config.Describe(),
            "$.progressive_layer_drop.gamma = 0.01");

        var error = Fails("""{"train_batch_size": 8, "progressive_layer_drop": {"enabled": true, "theta": 0, "gamma": -1}}""");
        StringAssert.Contains(error.Message, "$.progressive_layer_drop.theta: 0 is out of range");
        StringAssert.Contains(error.Message, "$.progressive_layer_drop.gamma: -1 is out of range");
        AssertWarning(Parse("""{"train_batch_size": 8, "progressive_layer_drop": {"enabled": true, "thetta": 0.5}}"""),
            "$.progressive_layer_drop.thetta: unknown key, ignored (did you mean \"theta\"?)");
    }

    [TestMethod]
    public void UnsupportedOptimizer_AndOneCycleWithoutItsRates_AreErrors()
    {
        var error = Fails("""{"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"lr": 1e-4}}, "scheduler": {"type": "OneCycle", "params": {}}}""");
        Assert.AreEqual(3, error.Errors.Count, error.Message);
        StringAssert.Contains(error.Message, "$.optimizer.type: known DeepSpeed feature not supported by Shardwise yet: optimizer \"SGD\"; ignoring it would change training results, so use Adam, AdamW, Adagrad, Lamb, Lion, OneBitAdam, OneBitLamb or ZeroOneAdam");
        StringAssert.Contains(error.Message, "$.scheduler.params.cycle_min_lr is required for OneCycle");
        StringAssert.Contains(error.Message, "$.scheduler.params.cycle_max_lr is required for OneCycle");
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "scheduler": {"type": "Cyclic"}}""").Message,
            "unknown scheduler \"Cyclic\"; Shardwise supports WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle or LRRangeTest");
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "optimizer": {"type": "Sophia"}}""").Message, "unknown optimizer \"Sophia\"");
    }

    [TestMethod]
    public void Lamb_ReadsFusedLambsParameters_AndRefusesWhatWouldChangeIt()
    {
        var result = Parse("""
            {"train_batch_size": 8, "optimizer": {"type": "Lamb", "params": {"lr": 11e-3, "weight_decay": 0.01, "bias_correction": false,
             "max_coeff": 0.3, "min_coeff": 0.01, "betas": [0.9, 0.98], "eps_inside_sqrt": true, "max_grad_norm": 0}}}
            """);
        var optimizer = result.Config.Optimizer!;
        Assert.AreEqual(OptimizerType.Lamb, optimizer.Type);
        Assert.AreEqual(new LambConfig { MaxCoeff = 0.3, MinCoeff = 0.01, EpsInsideSqrt = true }, optimizer.Lamb);
        Assert.AreEqual((0.9, 0.98, 11e-3, false), (optimizer.Beta1, optimizer.Beta2, optimizer.LearningRate, optimizer.BiasCorrection));
        Assert.AreEqual(0, result.Warnings.Count, string.Join("; ", result.Warnings));
        Assert.AreEqual(new LambConfig(), Parse("""{"train_batch_size": 8, "optimizer": {"type": "lamb"}}""").Config.Optimizer!.Lamb,
            "FusedLamb's defaults: max_coeff 10, min_coeff 0.01, eps outside the root");

        StringAssert.Contains(Fails("""{"train_batch_size": 8, "optimizer": {"type": "Lamb", "params": {"max_grad_norm": 1.0}}}""").Message,
            "$.optimizer.params.max_grad_norm: known DeepSpeed feature not supported by Shardwise yet: Lamb's own max_grad_norm");
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "optimizer": {"type": "Lamb", "params": {"max_coeff": 0.001}}}""").Message,
            "$.optimizer.params.max_coeff: 0.001 is out of range: must be >= min_coeff (0.01)");
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "optimizer": {"type": "Lamb"}, "zero_optimization": {"stage": 1}}""").Message,
            "$.zero_optimization.stage: 1 partitions the optimizer over ranks, and Lamb's trust ratio needs whole parameter tensors");
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "optimizer": {"type": "Lamb", "params": {"amsgrad": true}}}""").Message, "AMSGrad");
    }

    [TestMethod]
    public void OneCycleAndLRRangeTest_ReadEveryParameter()
    {
        var result = Parse("""
            {"train_batch_size": 8, "scheduler": {"type": "onecycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3,
             "decay_lr_rate": 0.1, "cycle_first_step_size": 10, "cycle_first_stair_count": 4, "decay_step_size": 5,
             "cycle_momentum": true, "cycle_min_mom": 0.85, "cycle_max_mom": 0.95, "decay_mom_rate": 0.02}}}
            """);
        var cycle = result.Config.Scheduler!.OneCycle!;
        Assert.AreEqual(SchedulerType.OneCycle, result.Config.Scheduler.Type);
        Assert.AreEqual(new OneCycleConfig { CycleMinLr = 1e-4, CycleMaxLr = 1e-3, DecayLrRate = 0.1, CycleFirstStepSize = 10,
            CycleSecondStepSize = 10, DecayStepSize = 5, CycleMomentum = true, CycleMinMom = 0.85, CycleMaxMom = 0.95, DecayMomRate = 0.02 }, cycle,
            "cycle_second_step_size defaults to the first");
        AssertWarning(result, "$.scheduler.params.cycle_first_stair_count: has no effect: DeepSpeed's OneCycle does not use it either (the schedule is continuous)");

        StringAssert.Contains(Fails("""{"train_batch_size": 8, "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_max_mom": 1.2}}}""").Message,
            "$.scheduler.params.cycle_max_mom: 1.2 is out of range: a momentum (Adam's β1) must be in [0, 1)");
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_first_step_size": 0}}}""").Message,
            "$.scheduler.params.cycle_first_step_size: 0 is out of range: must be >= 1");

        var range = Parse("""{"train_batch_size": 8, "scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_min_lr": 1e-5, "lr_range_test_step_size": 100, "lr_range_test_step_rate": 5, "lr_range_test_staircase": true}}}""");
        Assert.AreEqual(new LrRangeTestConfig { MinLr = 1e-5, StepSize = 100, StepRate = 5, Staircase = true }, range.Config.Scheduler!.LrRangeTest);
        Assert.AreEqual(new LrRangeTestConfig(), Parse("""{"train_batch_size": 8, "scheduler": {"type": "LRRangeTest"}}""").Config.Scheduler!.LrRangeTest,
            "DeepSpeed's defaults: min 1e-3, step size 2000, rate 1, no staircase");
    }

    [TestMethod]
    public void Fp16AndBf16Together_IsAnError()
    {
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "fp16": {"enabled": true}, "bf16": {"enabled": true}}""").Message, "fp16 and bf16 are both enabled");
    }

    [TestMethod]
    public void Auto_WithoutOverride_NamesThePathAndTheFlag()
    {
        var error = Fails("""{"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto"}}}""");
        StringAssert.Contains(error.Message, "$.optimizer.params.lr is \"auto\": pass --lr or set a number");
        StringAssert.Contains(error.Message, "$.optimizer.params.betas is \"auto\"");
        Assert.AreEqual(2, error.Errors.Count);
    }

    [TestMethod]
    public void Auto_WithOverrides_IsResolved()
    {
        var overrides = new ConfigOverrides
        {
            MicroBatchPerGpu = 4, GradientAccumulationSteps = 2, LearningRate = 2e-5, Betas = (0.9, 0.98), Eps = 1e-6,
            WeightDecay = 0.05, WarmupSteps = 30, TotalSteps = 300, GradientClipping = 1.5, Fp16 = true, Bf16 = false,
        };
        var config = Parse("""
            {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
             "gradient_clipping": "auto", "fp16": {"enabled": "auto"}, "bf16": {"enabled": "auto"},
             "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
             "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto", "warmup_num_steps": "auto", "total_num_steps": "auto"}}}
            """, overrides).Config;
        Assert.AreEqual(new BatchSizes(32, 4, 2, 4), config.Resolve(4));
        Assert.AreEqual(1.5, config.GradientClipping);
        Assert.IsTrue(config.Fp16.Enabled);
        Assert.IsFalse(config.Bf16.Enabled);
        var optimizer = config.Optimizer!;
        Assert.AreEqual((2e-5, 0.9, 0.98, 1e-6, 0.05), (optimizer.LearningRate, optimizer.Beta1, optimizer.Beta2, optimizer.Eps, optimizer.WeightDecay));
        var scheduler = config.Scheduler!;
        Assert.AreEqual((0.0, 2e-5, 30L, (long?)300), (scheduler.WarmupMinLr, scheduler.WarmupMaxLr, scheduler.WarmupNumSteps, scheduler.TotalNumSteps));
    }

    [TestMethod]
    public void Auto_ExplicitValuesWinOverOverrides()
    {
        var config = Parse("""{"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"lr": 0.5}}}""", new ConfigOverrides { LearningRate = 0.1 }).Config;
        Assert.AreEqual(0.5, config.Optimizer!.LearningRate);
    }

    [TestMethod]
    public void Auto_BucketSizes_FromHiddenSize_OrDefaultWithWarning()
    {
        const string Json = """{"train_batch_size": 8, "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto"}}""";
        var sized = Parse(Json, new ConfigOverrides { HiddenSize = 1024 });
        Assert.AreEqual(1024L * 1024, sized.Config.ZeroOptimization.ReduceBucketSize);
        Assert.AreEqual(943718L, sized.Config.ZeroOptimization.Stage3PrefetchBucketSize); // floor(0.9 · 1024²)
        Assert.AreEqual(10240L, sized.Config.ZeroOptimization.Stage3ParamPersistenceThreshold);
        Assert.AreEqual(0, sized.Warnings.Count);

        var defaulted = Parse(Json);
        Assert.AreEqual(ConfigDefaults.ReduceBucketSize, defaulted.Config.ZeroOptimization.ReduceBucketSize);
        Assert.AreEqual(3, defaulted.Warnings.Count);
        StringAssert.StartsWith(defaulted.Warnings[0], "$.zero_optimization.reduce_bucket_size: \"auto\" and no value was given");
    }

    [TestMethod]
    public void Auto_WhereMeaningless_IsRejected()
    {
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "steps_per_print": "auto"}""").Message, "$.steps_per_print: \"auto\" is not accepted here");
    }

    [TestMethod]
    public void Stage3OnlyKeys_BelowStage3_Warn_AndParamOffloadIsDisabled()
    {
        var result = Parse("""{"train_batch_size": 8, "zero_optimization": {"stage": 2, "stage3_max_live_parameters": 1e9, "offload_param": {"device": "cpu"}}}""");
        AssertWarning(result, "$.zero_optimization.stage3_max_live_parameters: applies only to ZeRO stage 3; ignored at stage 2");
        AssertWarning(result, "$.zero_optimization.offload_param: parameter offload needs ZeRO stage 3; ignored at stage 2");
        Assert.AreEqual(OffloadDevice.None, result.Config.ZeroOptimization.OffloadParam.Device);
    }

    [TestMethod]
    public void ZeroPlusPlusKeys_AreReadAtStage3_WarnedBelow_AndHpzMustDivideTheRanks()
    {
        var result = Parse("""{"train_batch_size": 8, "zero_optimization": {"stage": 3, "zero_quantized_weights": true, "zero_quantized_gradients": true, "zero_hpz_partition_size": 4, "zero_quantized_nontrainable_weights": true}}""");
        var zero = result.Config.ZeroOptimization;
        Assert.IsTrue(zero.QuantizedWeights && zero.QuantizedGradients);
        Assert.AreEqual(4, zero.HpzPartitionSize);
        AssertWarning(result, "$.zero_optimization.zero_quantized_nontrainable_weights: has no effect: every parameter of a Shardwise model is trained, so none is frozen to keep quantized");
        Assert.AreEqual(1, result.Warnings.Count, string.Join("\n", result.Warnings));
        StringAssert.Contains(result.Config.Describe(), "$.zero_optimization.zero_hpz_partition_size = 4");
        Assert.AreEqual(new BatchSizes(8, 1, 1, 8), result.Config.Resolve(8));
        var error = Assert.ThrowsExactly<ConfigException>(() => result.Config.Resolve(6));
        StringAssert.Contains(error.Message, "$.zero_optimization.zero_hpz_partition_size is 4, which does not divide the data-parallel size 6");
        Assert.IsFalse(Parse("""{"train_batch_size": 8}""").Config.ZeroOptimization.QuantizedWeights, "off by default, as in DeepSpeed");

        var below = Parse("""{"train_batch_size": 12, "zero_optimization": {"stage": 2, "zero_quantized_weights": true, "zero_hpz_partition_size": 4}}""");
        AssertWarning(below, "$.zero_optimization.zero_quantized_weights: applies only to ZeRO stage 3; ignored at stage 2");
        AssertWarning(below, "$.zero_optimization.zero_hpz_partition_size: applies only to ZeRO stage 3; ignored at stage 2");
        Assert.AreEqual(6, below.Config.Resolve(6).DataParallelSize, "below stage 3 the group size does not constrain the ranks");
        Assert.IsNull(Shardwise.Training.Zero.TransferQuantization.From(below.Config.ZeroOptimization, Shardwise.Precision.StorageType.Float32));
    }

    [TestMethod]
    public void GradientCommunicationKeys_AreRead_AndBadValuesNameTheirKey()
    {
        var unset = Parse("""{"train_batch_size": 8}""").Config.GradientCommunication;
        Assert.IsTrue(unset.IsDefault);
        Assert.IsNull(unset.DataType);

        // Older DeepSpeed spells bf16 "bfp16" (../shared/ds_configs/17_*); the names are case-insensitive, as there.
        foreach (var (name, type) in new[] { ("bfp16", Shardwise.Precision.StorageType.BFloat16), ("BF16", Shardwise.Precision.StorageType.BFloat16),
                                             ("fp16", Shardwise.Precision.StorageType.Float16), ("fp32", Shardwise.Precision.StorageType.Float32) })
        {
            var result = Parse($$"""{"train_batch_size": 8, "communication_data_type": "{{name}}"}""");
            Assert.AreEqual(type, result.Config.GradientCommunication.DataType, name);
            Assert.AreEqual(0, result.Warnings.Count, string.Join("\n", result.Warnings));
        }

        var predivided = Parse("""{"train_batch_size": 8, "gradient_predivide_factor": 8, "communication_data_type": "fp16"}""").Config;
        Assert.AreEqual(8.0, predivided.GradientCommunication.PredivideFactor);
        Assert.IsFalse(predivided.GradientCommunication.PrescaleGradients);
        Assert.AreEqual("fp16 on the wire, predivided by 8, then × 8/ranks", predivided.GradientCommunication.Describe());
        StringAssert.Contains(predivided.Describe(), "$.gradient_predivide_factor = 8");

        // DeepSpeed's bing_bert config (../shared/ds_configs/03_*) sets both: prescaling wins, as in DeepSpeed's engine.
        var both = Parse("""{"train_batch_size": 8, "prescale_gradients": true, "gradient_predivide_factor": 8}""");
        Assert.IsTrue(both.Config.GradientCommunication.PrescaleGradients);
        AssertWarning(both, "$.gradient_predivide_factor: has no effect with prescale_gradients true, which divides by the rank count before the reduction (DeepSpeed ignores it then too)");

        var error = Fails("""{"train_batch_size": 8, "communication_data_type": "int8", "gradient_predivide_factor": 0}""");
        StringAssert.Contains(error.Message, "$.communication_data_type: \"int8\" is not a communication type: use \"fp32\", \"fp16\" or \"bf16\"");
        StringAssert.Contains(error.Message, "$.gradient_predivide_factor: 0 is out of range: must be a finite number > 0");

        var quantized = Parse("""{"train_batch_size": 8, "communication_data_type": "bf16", "zero_optimization": {"stage": 3, "zero_quantized_gradients": true}}""");
        AssertWarning(quantized, "$.communication_data_type: has no effect beside $.zero_optimization.zero_quantized_gradients: qgZ sends the gradients as int4 blocks, each with its own scale");
    }

    [TestMethod]
    public void MonitorConfigAndCommsConfig_AreKeysDeepSpeedDoesNotRead()
    {
        var result = Parse("""
            {"train_batch_size": 8, "comms_config": {"verbose": false},
             "monitor_config": {"enabled": true, "tag": "DeepSpeedMonitor", "csv_monitor": {"enabled": true}, "tensorboard": {"enabled": false}}}
            """);
        AssertWarning(result, "$.monitor_config: DeepSpeed does not read this key (its monitors are the top-level tensorboard, csv_monitor, wandb and comet sections), and neither does Shardwise: nothing inside it runs; to enable csv_monitor, move it to the top level");
        AssertWarning(result, "$.comms_config: DeepSpeed does not read this key (its communication log is the top-level comms_logger section), and neither does Shardwise; ignored");
        Assert.AreEqual(2, result.Warnings.Count, string.Join("\n", result.Warnings));
        Assert.IsFalse(result.Config.CsvMonitor.Enabled, "a csv_monitor inside monitor_config does not run, as in DeepSpeed");
    }

    [TestMethod]
    public void NcclAveragesAsAsked_InTheStorageTypeOrFp32()
    {
        static GradientCommunicationConfig Read(string keys) => Parse($$"""{"train_batch_size": 8 {{keys}} }""").Config.GradientCommunication;
        var bf16 = Shardwise.Precision.StorageType.BFloat16;
        Assert.IsTrue(Read("").NcclAveragesAsAsked(bf16));
        Assert.IsTrue(Read(", \"communication_data_type\": \"bf16\"").NcclAveragesAsAsked(bf16));
        Assert.IsTrue(Read(", \"prescale_gradients\": true").NcclAveragesAsAsked(bf16), "NCCL's average multiplies by 1/ranks before the sum");
        Assert.IsTrue(Read(", \"communication_data_type\": \"fp32\"").NcclAveragesAsAsked(bf16), "widened into fp32 scratch on the device");
        Assert.IsFalse(Read(", \"communication_data_type\": \"fp16\"").NcclAveragesAsAsked(bf16), "a 16-bit wire of the other kind goes through the host");
        Assert.IsTrue(Read(", \"gradient_predivide_factor\": 2").NcclAveragesAsAsked(bf16), "NCCL's average divides before the sum, which is what predivision guards");
    }

    [TestMethod]
    public void NvmeOffload_NeedsStageThreeForParametersAndAnUnknownDeviceIsAnError()
    {
        // Below stage 3 the parameter swap is ignored with a warning, as DeepSpeed ignores offload_param there.
        var below = Parse("""{"train_batch_size": 8, "zero_optimization": {"stage": 2, "offload_param": {"device": "nvme", "nvme_path": "/nvme"}}}""");
        Assert.AreEqual(OffloadDevice.None, below.Config.ZeroOptimization.OffloadParam.Device);
        AssertWarning(below, "$.zero_optimization.offload_param: parameter offload needs ZeRO stage 3; ignored at stage 2");
        var error = Fails("""{"train_batch_size": 8, "zero_optimization": {"stage": 3, "offload_param": {"device": "ssd"}}}""");
        StringAssert.Contains(error.Message, "$.zero_optimization.offload_param.device: unknown offload device \"ssd\"; use \"none\", \"cpu\" or \"nvme\"");
    }

    [TestMethod]
    public void LegacyForms_AreReadWithWarnings()
    {
        var boolean = Parse("""{"train_batch_size": 8, "zero_optimization": true}""");
        Assert.AreEqual(1, boolean.Config.ZeroOptimization.Stage);
        AssertWarning(boolean, "$.zero_optimization: legacy boolean form, read as {\"stage\": 1}; write the object form");

        var cpuOffload = Parse("""{"train_batch_size": 8, "zero_optimization": {"stage": 2, "cpu_offload": true}, "bfloat16": {"enabled": true}}""");
        Assert.AreEqual(OffloadDevice.Cpu, cpuOffload.Config.ZeroOptimization.OffloadOptimizer.Device);
        Assert.IsTrue(cpuOffload.Config.Bf16.Enabled);
        AssertWarning(cpuOffload, "$.bfloat16: legacy alias of \"bf16\"; read as bf16");
    }

    [TestMethod]
    public void DuplicateKey_IsAnError()
    {
        StringAssert.Contains(Fails("""{"train_batch_size": 8, "optimizer": {"type": "Adam"}, "optimizer": {"type": "AdamW"}}""").Message, "$.optimizer: duplicate key");
    }

    [TestMethod]
    public void AllErrorsAreReportedTogether()
    {
        var error = Fails("""{"train_batch_size": -1, "zero_optimization": {"stage": 7}, "gradient_clipping": -1, "sparse_attention": {"mode": "strided"}}""");
        Assert.AreEqual(4, error.Errors.Count, error.Message);
        StringAssert.Contains(error.Message, "4 configuration errors");
    }

    [TestMethod]
    public void PythonLiteral_FailsWithLineAndColumn()
    {
        const string Json = "{\n  \"fp16\": {\n    \"enabled\": True\n  }\n}";
        var error = Fails(Json);
        Assert.AreEqual(3, error.Line);
        Assert.AreEqual("    \"enabled\": True".IndexOf("True", StringComparison.Ordinal) + 1, error.Column);
        StringAssert.Contains(error.Message, "test.json:3:16");
        StringAssert.Contains(error.Message, "Python literal True: JSON spells it true");
    }

    [TestMethod]
    public void ColumnsCountCharactersNotBytes()
    {
        const string Json = "{\n  // 注释 comment\n  \"a\": 1, \"é\": None\n}";
        var error = Fails(Json);
        Assert.AreEqual(3, error.Line);
        Assert.AreEqual("  \"a\": 1, \"é\": None".IndexOf("None", StringComparison.Ordinal) + 1, error.Column);
    }

    [TestMethod]
    public void CommentsAndTrailingCommas_AreAccepted()
    {
        var config = Parse("""
            {
              // the global batch
              "train_batch_size": 16, /* block comment */
              "zero_optimization": {"stage": 1,},
            }
            """).Config;
        Assert.AreEqual(16, config.TrainBatchSize);
        Assert.AreEqual(1, config.ZeroOptimization.Stage);
    }

    [TestMethod]
    public void TopLevelMustBeAnObject()
    {
        StringAssert.Contains(Fails("[1, 2]").Message, "$: the top level must be a JSON object");
    }

    [TestMethod]
    public void MissingFile_IsAConfigException()
    {
        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Load("/nonexistent/ds_config.json"));
        StringAssert.Contains(error.Message, "/nonexistent/ds_config.json");
    }

    [TestMethod]
    public void Describe_PrintsEffectiveValuesSortedByPath()
    {
        var config = Parse("""{"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 4, "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}, "optimizer": {"type": "AdamW", "params": {"lr": 3e-4}}}""").Config;
        var text = config.Describe(dataParallelSize: 8);
        var lines = text.Split(Environment.NewLine);
        CollectionAssert.AreEqual(lines.OrderBy(l => l.Split(" = ")[0], StringComparer.Ordinal).ToArray(), lines);
        CollectionAssert.Contains(lines, "$.train_batch_size = 64");
        CollectionAssert.Contains(lines, "$.zero_optimization.overlap_comm = true");
        CollectionAssert.Contains(lines, "$.zero_optimization.offload_optimizer.device = cpu");
        CollectionAssert.Contains(lines, "$.zero_optimization.offload_optimizer.pin_memory = false");
        CollectionAssert.Contains(lines, "$.optimizer.params.lr = 0.0003");
        CollectionAssert.Contains(lines, "$.optimizer.params.adam_w_mode = true");
        CollectionAssert.Contains(lines, "$.fp16.hysteresis = 2");
        CollectionAssert.Contains(lines, "$.steps_per_print = 10");
        CollectionAssert.Contains(lines, "$.scheduler = (none: constant learning rate)");
        Assert.AreEqual(config.Describe(), config.ToString());
        StringAssert.Contains(config.Describe(), "$.train_batch_size = (inferred by the batch rule)");
    }
}
