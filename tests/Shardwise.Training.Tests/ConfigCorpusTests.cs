using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

/// <summary>The 45 real DeepSpeed configs in /work/shared/ds_configs: none may crash the loader.</summary>
[TestClass]
public sealed partial class ConfigCorpusTests
{
    /// <summary>What a Hugging Face launcher would pass for the "auto" values.</summary>
    private static readonly ConfigOverrides FullOverrides = new()
    {
        MicroBatchPerGpu = 4,
        GradientAccumulationSteps = 2,
        LearningRate = 2e-5,
        TotalSteps = 1000,
        WarmupSteps = 100,
        WeightDecay = 0.01,
        Betas = (0.9, 0.999),
        Eps = 1e-8,
        GradientClipping = 1.0,
        Fp16 = false,
        Bf16 = true,
        HiddenSize = 1024,
    };

    public TestContext TestContext { get; set; } = null!;

    [GeneratedRegex(@"\$[.:\w\[\]]*|:\d+:\d+: malformed JSON")]
    private static partial Regex NamesAPathOrPosition();

    private static string[] AllFiles() =>
        Directory.GetFiles(TestPaths.DsConfigs, "*.json")
            .Concat(Directory.GetFiles(Path.Combine(TestPaths.DsConfigs, "odd"), "*.json"))
            .Order(StringComparer.Ordinal)
            .ToArray();

    [TestMethod]
    public void EveryFile_LoadsOrFailsWithAConfigException()
    {
        var files = AllFiles();
        Assert.AreEqual(45, files.Length, $"corpus at {TestPaths.DsConfigs}");
        int loaded = 0, loadedWithOverrides = 0;
        foreach (var file in files)
        {
            loaded += Outcome(file, overrides: null) ? 1 : 0;
            loadedWithOverrides += Outcome(file, FullOverrides) ? 1 : 0;
        }

        TestContext.WriteLine($"loaded without overrides: {loaded}/45, with overrides: {loadedWithOverrides}/45");
        Assert.IsTrue(loadedWithOverrides > loaded, "overrides must resolve the Hugging Face \"auto\" files");
    }

    private bool Outcome(string file, ConfigOverrides? overrides)
    {
        var name = Path.GetRelativePath(TestPaths.DsConfigs, file);
        var label = overrides is null ? name : name + " (with overrides)";
        try
        {
            var result = DeepSpeedConfig.Load(file, overrides);
            TestContext.WriteLine($"LOADED {label}: {result.Warnings.Count} warning(s)");
            foreach (var warning in result.Warnings)
            {
                TestContext.WriteLine("    warning " + warning);
            }

            Assert.IsFalse(string.IsNullOrWhiteSpace(result.Config.Describe()));
            return true;
        }
        catch (ConfigException e)
        {
            TestContext.WriteLine($"REJECTED {label}: {e.Message}");
            StringAssert.Contains(e.Message, file, "the message names the file");
            foreach (var error in e.Errors)
            {
                Assert.IsTrue(NamesAPathOrPosition().IsMatch(e.Line is null ? error : e.Message), $"{label}: error names no JSON path or line:column: {error}");
            }

            return false;
        }
    }

    private static ConfigLoadResult Load(string name, ConfigOverrides? overrides = null) => DeepSpeedConfig.Load(TestPaths.Config(name), overrides);

    private static ConfigException Rejects(string name, ConfigOverrides? overrides = null) =>
        Assert.ThrowsExactly<ConfigException>(() => Load(name, overrides));

    [TestMethod]
    public void NvmeConfigs_TakeBothSwaps()
    {
        // ZeRO-Infinity: the optimizer state (Offload/SwappedOptimizerState) and ZeRO-3's parameter pieces
        // (Offload/SwappedParameterPieces) swapped to nvme_path.
        var zero = Load("06_dse_zero_infinity_nvme.json").Config.ZeroOptimization;
        Assert.AreEqual((OffloadDevice.Nvme, "/nvme_data", 4), (zero.OffloadOptimizer.Device, zero.OffloadOptimizer.NvmePath, zero.OffloadOptimizer.BufferCount));
        Assert.AreEqual((OffloadDevice.Nvme, "/nvme_data"), (zero.OffloadParam.Device, zero.OffloadParam.NvmePath));
        Assert.AreEqual(100_000_000L, zero.SubGroupSize);
        // 25 asks for the parameter swap alone, with DeepSpeed's "keep nothing for reuse" distance of -1.
        var inference = Load("25_dse_inference_offload_param_nvme.json").Config.ZeroOptimization;
        Assert.AreEqual((3, OffloadDevice.Nvme, "/mnt/nvme0/ds_offload"), (inference.Stage, inference.OffloadParam.Device, inference.OffloadParam.NvmePath));
        Assert.AreEqual(OffloadDevice.None, inference.OffloadOptimizer.Device);
        Assert.AreEqual(-1L, inference.Stage3MaxReuseDistance);
    }

    [TestMethod]
    public void AutoTpConfig_LoadsItsDegree_ForTheTrainerToCheckAgainstThePlan()
    {
        // 27 (LLaMA-Factory's AutoTP recipe): the degree is read; whether the model was compiled for it is the trainer's
        // check (Cli/TensorParallelCheck), since Shardwise splits layers at build time.
        var config = Load("27_llamafactory_z2_autotp.json", FullOverrides).Config;
        Assert.AreEqual(2, config.TensorParallelSize);
        StringAssert.Contains(config.Describe(), "$.tensor_parallel.autotp_size = 2");
        Assert.AreEqual(1, Load("17_mds_zero2_bfloat16_flops_profiler.json").Config.TensorParallelSize, "absent: 1");

        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""{"train_batch_size": 8, "tensor_parallel": {"autotp_size": 0}}""")).Message,
            "$.tensor_parallel.autotp_size: 0 is out of range: must be >= 1");
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""{"train_batch_size": 8, "tensor_parallel": {"autotp_size": 2, "tp_size": 4}}""")).Message,
            "$.tensor_parallel.tp_size: 4 disagrees with autotp_size (2)");
        Assert.AreEqual(4, DeepSpeedConfig.Parse("""{"train_batch_size": 8, "tensor_parallel": {"tp_size": 4}}""").Config.TensorParallelSize, "the older spelling");
    }

    [TestMethod]
    public void TrailingComma_Loads()
    {
        var config = Load("odd/01_dse_pipeline_trailing_comma.json").Config;
        Assert.AreEqual(new BatchSizes(256, 16, 16, 1), config.Resolve(1));
        Assert.AreEqual(OptimizerType.Adam, config.Optimizer!.Type);
    }

    [TestMethod]
    public void LineComments_Load_OnceAutoIsResolved()
    {
        const string Name = "odd/02_llamafactory_z3_offload_line_comments.json";
        var error = Rejects(Name);
        Assert.IsNull(error.Line, "comments are not a JSON error");
        StringAssert.Contains(error.Message, "$.train_micro_batch_size_per_gpu is \"auto\": pass --micro-batch or set a number");

        var result = Load(Name, FullOverrides);
        Assert.AreEqual(3, result.Config.ZeroOptimization.Stage);
        Assert.IsFalse(result.Config.ZeroOptimization.OverlapComm, "explicit false beats the stage-3 default");
        Assert.IsFalse(result.Config.CommsLogger.Enabled, "the comms_logger section is read: enabled false");
        Assert.IsFalse(result.Config.FlopsProfiler.Enabled, "the commented-out flops_profiler block (enabled: true) is skipped");
    }

    [TestMethod]
    public void PythonLiterals_FailWithLineAndColumn()
    {
        var error = Rejects("odd/05_mds_python_literals_placeholders.json");
        Assert.AreEqual(2, error.Line);
        Assert.AreEqual("    \"train_batch_size\" : global_batch_size,".IndexOf('g', StringComparison.Ordinal) + 1, error.Column);
        StringAssert.Contains(error.Message, $":2:{error.Column}:");
        StringAssert.Contains(error.Message, "unquoted word \"global_batch_size\"");
    }

    [TestMethod]
    public void PythonTrueLiteral_IsNamedWhenItIsTheFirstProblem()
    {
        var text = File.ReadAllText(TestPaths.Config("odd/05_mds_python_literals_placeholders.json"))
            .Replace("global_batch_size", "64", StringComparison.Ordinal)
            .Replace("micro_batch_size", "8", StringComparison.Ordinal);
        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse(text, "fixed.json"));
        Assert.AreEqual(12, error.Line);
        StringAssert.Contains(error.Message, "Python literal True: JSON spells it true");
    }

    [TestMethod]
    public void MissingComma_And_MissingBraces_FailWithPosition()
    {
        var comma = Rejects("odd/04_dse_imagenet_missing_comma_tabs.json");
        Assert.AreEqual(27, comma.Line);
        StringAssert.Contains(comma.Message, "comma is probably missing");

        var braces = Rejects("odd/03_gdgpt_inline_comments_no_braces.json");
        Assert.IsNotNull(braces.Line);
        StringAssert.Contains(braces.Message, "without the enclosing { }");
    }

    [TestMethod]
    public void HuggingFaceAuto_FailsNamingPaths_ThenLoadsWithOverrides()
    {
        const string Name = "22_hf_transformers_zero2_auto.json";
        var error = Rejects(Name);
        StringAssert.Contains(error.Message, "$.optimizer.params.lr is \"auto\": pass --lr or set a number");
        StringAssert.Contains(error.Message, "$.fp16.enabled is \"auto\"");
        StringAssert.Contains(error.Message, "$.gradient_clipping is \"auto\"");

        var config = Load(Name, FullOverrides).Config;
        Assert.AreEqual(new BatchSizes(16, 4, 2, 2), config.Resolve(2));
        Assert.AreEqual(2e-5, config.Optimizer!.LearningRate);
        Assert.AreEqual(SchedulerType.WarmupLR, config.Scheduler!.Type);
        Assert.AreEqual(2e-5, config.Scheduler.WarmupMaxLr);
        Assert.AreEqual(0.0, config.Scheduler.WarmupMinLr);
        Assert.AreEqual(100, config.Scheduler.WarmupNumSteps);
        Assert.IsTrue(config.Bf16.Enabled);
        Assert.IsFalse(config.Fp16.Enabled);
        Assert.AreEqual(OffloadDevice.Cpu, config.ZeroOptimization.OffloadOptimizer.Device);
        Assert.IsTrue(config.ZeroOptimization.OffloadOptimizer.PinMemory);
        Assert.AreEqual(200_000_000L, config.ZeroOptimization.ReduceBucketSize);
    }

    [TestMethod]
    public void WarmupCosineWithoutTotalSteps_NeedsTheOverride()
    {
        const string Name = "36_gdgpt_pp_warmupcosinelr.json";
        StringAssert.Contains(Rejects(Name).Message, "$.scheduler.params.total_num_steps is required for WarmupCosineLR: set it or pass --total-steps");
        var result = Load(Name, new ConfigOverrides { TotalSteps = 2000 });
        var schedule = LearningRateScheduleFactory.Create(result.Config);
        Assert.AreEqual(1e-5 * 0.02, schedule.LearningRate(0), 1e-20);
        Assert.AreEqual(1e-5 * 0.2, schedule.LearningRate(1999), 1e-18);
        Assert.IsTrue(result.Warnings.Contains("$.model_topo: unknown key, ignored"));
        Assert.AreEqual(new BatchSizes(128, 1, 16, 8), result.Config.Resolve(8));
    }

    [TestMethod]
    public void BingBertOneBitConfigs_Load()
    {
        // OneBitAdam and OneBitLamb are implemented (Optim/): bing_bert's configs load with their freeze steps.
        var oneBit = Load("02_dse_bingbert_onebitadam_nccl.json").Config.Optimizer!;
        Assert.AreEqual(OptimizerType.OneBitAdam, oneBit.Type);
        Assert.AreEqual(23000, oneBit.OneBit!.FreezeStep);
        Assert.AreEqual("nccl", oneBit.OneBit.CommBackendName);
        Assert.AreEqual(1000, Load("04_dse_bingbert_onebitlamb_nccl.json").Config.Optimizer!.OneBitLamb!.Compression.FreezeStep);
    }

    [TestMethod]
    public void BingBertLambWithSparseAttention_Loads()
    {
        var bingBert = Load("01_dse_bingbert_lamb_sparse_attention.json");
        Assert.AreEqual(OptimizerType.Lamb, bingBert.Config.Optimizer!.Type);
        var sparse = bingBert.Config.SparseAttention!;
        Assert.AreEqual(new Shardwise.Sparsity.SparseAttentionPattern
        {
            Mode = Shardwise.Sparsity.SparseAttentionMode.Fixed, Block = 16, DifferentLayoutPerHead = true, NumLocalBlocks = 4, NumGlobalBlocks = 1,
            Attention = Shardwise.Sparsity.SparseAttentionDirection.Bidirectional, HorizontalGlobalAttention = false, NumDifferentGlobalPatterns = 4,
        }, sparse);
        Assert.AreEqual("fixed, block 16, 4 local / 1 global blocks, 4 global patterns, a layout per head, bidirectional layout", sparse.Describe());
        Assert.AreEqual(0, bingBert.Warnings.Count(w => w.Contains("sparse_attention", StringComparison.Ordinal)), string.Join("\n", bingBert.Warnings));
    }

    [TestMethod]
    public void OneCycleConfigs_Load()
    {
        var qanet = Load("12_dse_qanet_onecycle.json");
        Assert.AreEqual(new OneCycleConfig { CycleMinLr = 0.004, CycleMaxLr = 0.015, CycleFirstStepSize = 1000, CycleSecondStepSize = 100,
            DecayStepSize = 1000, DecayLrRate = 0.01 }, qanet.Config.Scheduler!.OneCycle);
        Assert.IsTrue(qanet.Warnings.Contains("$.scheduler.params.cycle_first_stair_count: has no effect: DeepSpeed's OneCycle does not use it either (the schedule is continuous)"));

        var cifar = Load("35_catid_cifar10_comms_logger_onecycle.json");
        Assert.AreEqual(new OneCycleConfig { CycleMinLr = 1e-4, CycleMaxLr = 4e-3, CycleSecondStepSize = 2000 }, cifar.Config.Scheduler!.OneCycle,
            "DeepSpeed's defaults: a 2000 + 2000 step cycle, momentum cycled between 0.8 and 0.9, no decay");
    }

    [TestMethod]
    public void RealConfigs_ReadAsDeepSpeedWould()
    {
        var legacy = Load("05_dse_megatron_zero_offload_10B_legacy.json");
        Assert.AreEqual(OffloadDevice.Cpu, legacy.Config.ZeroOptimization.OffloadOptimizer.Device);
        Assert.IsTrue(legacy.Config.Fp16.DynamicScalerKeysPresent);
        Assert.IsTrue(legacy.Config.ActivationCheckpointing.CpuCheckpointing);

        var staticScale = Load("07_dse_zero3_offload_device_None.json");
        Assert.AreEqual(1.0, staticScale.Config.Fp16.LossScale);
        Assert.AreEqual(OffloadDevice.None, staticScale.Config.ZeroOptimization.OffloadParam.Device);
        Assert.IsTrue(staticScale.Warnings.Contains("$.zero_optimization.stage3_param_persitence_threshold: unknown key, ignored (did you mean \"stage3_param_persistence_threshold\"?)"));

        var bf16 = Load("08_ds_torch_compile_z3_bf16.json");
        Assert.IsTrue(bf16.Config.Bf16.Enabled);
        Assert.IsTrue(bf16.Warnings.Contains("$.bf16.loss_scale: fp16 loss-scaling key has no effect under bf16 (bf16 needs no loss scaling); ignored"));

        var pipe = Load("14_ds_test_pipe_pipeline_section.json");
        Assert.AreEqual(0, pipe.Config.ZeroOptimization.Stage);
        Assert.IsNull(pipe.Config.Pipeline.Stages);

        var typo = Load("31_trlx_t5_bp16_typo.json");
        Assert.IsTrue(typo.Warnings.Contains("$.bp16: unknown key, ignored (did you mean \"bf16\"?)"));
        Assert.IsFalse(typo.Config.Bf16.Enabled);

        var floats = Load("32_llava_zero3_offload.json", FullOverrides);
        Assert.AreEqual(100000, floats.Config.StepsPerPrint);
        Assert.AreEqual(1024L * 1024, floats.Config.ZeroOptimization.ReduceBucketSize);

        // 09's list is autotuning's search space (the section is enabled): what stops it now is only its "auto" values.
        var autotuning = Rejects("09_dse_autotuning_list_values.json");
        Assert.IsFalse(autotuning.Message.Contains("train_micro_batch_size_per_gpu", StringComparison.Ordinal), autotuning.Message);
        Assert.IsTrue(autotuning.Errors.All(e => e.Contains("is \"auto\"", StringComparison.Ordinal)), autotuning.Message);
    }
}
