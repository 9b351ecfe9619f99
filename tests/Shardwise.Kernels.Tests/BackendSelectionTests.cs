using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Examples;
using Shardwise.Ops;
using Shardwise.Precision;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// Choosing the backend: <see cref="Backends"/> (cpu | cuda | auto), <c>--device</c> in the trainer's command line and
/// <see cref="TrainingEngine.CreateBackend"/>. The decision logic runs against fake GPU probes; the "cuda requested
/// but unavailable" path runs for real on a machine without libcuda (and is inconclusive on one with it).
/// </summary>
[TestClass]
public sealed class BackendSelectionTests
{
    private static bool NoGpu(out string reason)
    {
        reason = "fake probe: no device here";
        return false;
    }

    private static bool AGpu(out string reason)
    {
        reason = "fake probe: one device";
        return true;
    }

    private static string RequireNoGpu()
    {
        if (CudaRuntime.TryInitialize(out string reason)) Assert.Inconclusive($"a GPU is usable here ({reason}); this test is for machines without one");
        return reason;
    }

    [TestMethod]
    [DataRow("cpu", BackendKind.Cpu)]
    [DataRow("CUDA", BackendKind.Cuda)]
    [DataRow("gpu", BackendKind.Cuda)]
    [DataRow(" auto ", BackendKind.Auto)]
    public void NamesParse(string name, BackendKind expected) => Assert.AreEqual(expected, Backends.Parse(name));

    [TestMethod]
    public void AnUnknownNameListsTheValidOnes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Backends.Parse("tpu"));
        StringAssert.Contains(e.Message, "'tpu'");
        StringAssert.Contains(e.Message, "cpu, cuda, auto");
    }

    [TestMethod]
    public void AutoPicksCudaOnlyWhenTheProbeFindsAGpu()
    {
        Assert.AreEqual(BackendKind.Cuda, Backends.Resolve(BackendKind.Auto, AGpu));
        Assert.AreEqual(BackendKind.Cpu, Backends.Resolve(BackendKind.Auto, NoGpu));
        Assert.AreEqual(BackendKind.Cpu, Backends.Resolve(BackendKind.Cpu, AGpu), "cpu stays cpu even with a GPU");
        Assert.AreEqual(BackendKind.Cuda, Backends.Resolve(BackendKind.Cuda, AGpu));
    }

    [TestMethod]
    public void CudaWithoutAGpuFailsWithTheProbesReason()
    {
        var e = Assert.ThrowsExactly<BackendUnavailableException>(() => Backends.Resolve(BackendKind.Cuda, NoGpu));
        Assert.AreEqual("CUDA was requested but is not available: fake probe: no device here", e.Message);
    }

    [TestMethod]
    public void OnThisMachineCpuAndAutoGiveTheCpuBackendAndCudaTheDriversMessage()
    {
        string reason = RequireNoGpu();
        Assert.IsInstanceOfType<CpuOps<float>>(Backends.Create(BackendKind.Cpu));
        Assert.IsInstanceOfType<CpuOps<float>>(Backends.Create(BackendKind.Auto));
        Assert.IsInstanceOfType<CpuOps<float>>(Backends.Create(BackendKind.Cpu, StorageType.BFloat16), "the CPU stays fp32");
        StringAssert.Contains(Assert.ThrowsExactly<BackendUnavailableException>(() => Backends.Create(BackendKind.Cuda, StorageType.Float16)).Message, reason);
        var e = Assert.ThrowsExactly<BackendUnavailableException>(() => Backends.Create(BackendKind.Cuda));
        StringAssert.Contains(e.Message, reason);
        StringAssert.Contains(e.Message, "libcuda.so.1");
        Assert.ThrowsExactly<InvalidOperationException>(() => new CudaOps());
    }

    [TestMethod]
    public void TheEngineBackendFollowsTheDeviceAndKeepsTheZeroWrapper()
    {
        var stage0 = DeepSpeedConfig.Parse("""{ "train_micro_batch_size_per_gpu": 2 }""").Config;
        var stage2 = DeepSpeedConfig.Parse("""{ "train_micro_batch_size_per_gpu": 2, "zero_optimization": { "stage": 2 } }""").Config;
        Assert.IsInstanceOfType<CpuOps<float>>(CreateBackend(stage0, BackendKind.Cpu));
        Assert.IsInstanceOfType<CpuOps<float>>(CreateBackend(stage0), "the default is the CPU");
        var wrapped = CreateBackend(stage2, BackendKind.Cpu);
        Assert.IsInstanceOfType<CpuOps<float>>(((Shardwise.Training.Zero.GradientStreamingOps<float>)wrapped).Inner);

        string reason = RequireNoGpu();
        var e = Assert.ThrowsExactly<BackendUnavailableException>(() => CreateBackend(stage2, BackendKind.Cuda));
        StringAssert.Contains(e.Message, reason);
    }

    private static ITensorOps<float> CreateBackend(DeepSpeedConfig config, BackendKind? device = null) => device is { } d
        ? TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool, d)
        : TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool);

    [TestMethod]
    public void TheDeviceDefaultsToAutoAndSaysWhichItChoseAndWhy()
    {
        var (requested, choice) = RunSettings.ChooseDevice(null, null, AGpu);
        Assert.AreEqual(BackendKind.Auto, requested);
        Assert.AreEqual(new BackendChoice(BackendKind.Cuda, "GPU: fake probe: one device"), choice);

        (requested, choice) = RunSettings.ChooseDevice(null, "", NoGpu);
        Assert.AreEqual(BackendKind.Auto, requested);
        Assert.AreEqual(new BackendChoice(BackendKind.Cpu, "CPU: fake probe: no device here"), choice);

        Assert.AreEqual(new BackendChoice(BackendKind.Cpu, "CPU: asked for (--device cpu)"), RunSettings.ChooseDevice("cpu", null, AGpu).Choice);
    }

    [TestMethod]
    public void TheEnvironmentVariableChoosesWhenTheOptionIsAbsentAndTheOptionWins()
    {
        Assert.AreEqual(new BackendChoice(BackendKind.Cpu, "CPU: asked for (SHARDWISE_DEVICE=cpu)"), RunSettings.ChooseDevice(null, "cpu", AGpu).Choice);
        Assert.AreEqual(BackendKind.Cuda, RunSettings.ChooseDevice("cuda", "cpu", AGpu).Choice.Kind, "--device wins over the variable");
        Assert.AreEqual(BackendKind.Cuda, RunSettings.ChooseDevice(null, "gpu", AGpu).Requested);

        var unknown = Assert.ThrowsExactly<CliException>(() => RunSettings.ChooseDevice(null, "tpu", AGpu));
        Assert.AreEqual("SHARDWISE_DEVICE needs one of cpu, cuda, auto; got 'tpu'", unknown.Message);
        var unusable = Assert.ThrowsExactly<CliException>(() => RunSettings.ChooseDevice(null, "cuda", NoGpu));
        Assert.AreEqual("SHARDWISE_DEVICE=cuda: CUDA was requested but is not available: fake probe: no device here", unusable.Message);
    }

    [TestMethod]
    public void OnlyTheFirstSentenceOfTheProbesReasonIsPrinted()
    {
        static bool Verbose(out string reason)
        {
            reason = "Shardwise could not load the CUDA driver API: none of libcuda.so.1 could be loaded. To fix it, install a driver.";
            return false;
        }

        Assert.AreEqual("CPU: Shardwise could not load the CUDA driver API: none of libcuda.so.1 could be loaded",
            RunSettings.ChooseDevice(null, null, Verbose).Choice.Description);
    }

    [TestMethod]
    public void DeviceOptionRejectsUnknownNamesAndAutoIsTheCpuHere()
    {
        var e = Assert.ThrowsExactly<CliException>(() => RunSettings.ChooseDevice("tpu", null, AGpu));
        Assert.AreEqual("--device needs one of cpu, cuda, auto; got 'tpu'", e.Message);
        string reason = RequireNoGpu();
        var (_, choice) = RunSettings.ChooseDevice("auto");
        Assert.AreEqual(BackendKind.Cpu, choice.Kind);
        StringAssert.StartsWith(reason, choice.Description["CPU: ".Length..]);
    }

    [TestMethod]
    public void TrainWithDeviceCudaWithoutAGpuIsAOneLineErrorNamingTheReason()
    {
        string reason = RequireNoGpu();
        var settings = RunSettings.Read(CliArguments.Parse(["train", "--steps", "1"]), "TinyGpt", TextWriter.Null);
        Assert.AreEqual(BackendKind.Cpu, settings.Device, "auto is the CPU here");
        Assert.AreEqual(BackendKind.Auto, settings.DeviceRequested);

        TextWriter previous = Console.Error;
        var error = new StringWriter();
        int status;
        try
        {
            Console.SetError(error);
            status = TrainerCli.Run<TinyGpt>(["train", "--device", "cuda", "--steps", "1", "--output", Path.GetTempPath()], TextWriter.Null);
        }
        finally
        {
            Console.SetError(previous);
        }

        Assert.AreEqual(2, status);
        string message = error.ToString().TrimEnd();
        Assert.IsFalse(message.Contains('\n'), $"one line: {message}");
        StringAssert.StartsWith(message, "error: --device cuda: CUDA was requested but is not available: ");
        StringAssert.EndsWith(message, reason.TrimEnd());
    }

    /// <summary>
    /// The fused attention is on unless the options say otherwise or, when they leave it open, SHARDWISE_FUSED_ATTENTION
    /// is 0 or false (on by default since the tuned flash kernels beat the GEMM path on the H200).
    /// </summary>
    [TestMethod]
    public void FusedAttentionFollowsTheOptionsThenTheEnvironment() =>
        AssertTheOptionWinsThenTheVariable(CudaOpsOptions.FusedAttentionVariable,
            [(null, true), ("", true), ("1", true), ("true", true), ("0", false), ("false", false)],
            option => new CudaOpsOptions(FusedAttention: option), options => options.UsesFusedAttention);

    /// <summary>
    /// dQ from the stored dSᵀ tiles is the default since run 12 measured it on the H200: the option, else
    /// SHARDWISE_FLASH_DQ=recompute turns it off.
    /// </summary>
    [TestMethod]
    public void FlashDqFromStoredScoresFollowsTheOptionsThenTheEnvironment() =>
        AssertTheOptionWinsThenTheVariable(CudaOpsOptions.FlashDqVariable,
            [(null, true), ("", true), ("recompute", false), ("stored", true)],
            option => new CudaOpsOptions(FlashDqFromStoredScores: option), options => options.UsesFlashDqFromStoredScores);

    /// <summary>The bias gradient as a cuBLAS product is opt-in until measured: the option, else SHARDWISE_BIAS_GRADIENT=product.</summary>
    [TestMethod]
    public void BiasGradientByProductFollowsTheOptionsThenTheEnvironment() =>
        AssertTheOptionWinsThenTheVariable(CudaOpsOptions.BiasGradientVariable,
            [(null, false), ("", false), ("columns", false), ("product", true)],
            option => new CudaOpsOptions(BiasGradientByProduct: option), options => options.UsesBiasGradientByProduct);

    /// <summary>GEMM tuning is opt-in: the option, else SHARDWISE_GEMM_TUNING=1 or true.</summary>
    [TestMethod]
    public void GemmTuningFollowsTheOptionsThenTheEnvironment() =>
        AssertTheOptionWinsThenTheVariable(CudaOpsOptions.GemmTuningVariable,
            [(null, false), ("", false), ("0", false), ("1", true), ("true", true)],
            option => new CudaOpsOptions(GemmTuning: option), options => options.UsesGemmTuning);

    /// <summary>
    /// For each value of <paramref name="variable"/>, options that leave the choice open follow it, and an explicit
    /// option wins either way; the variable is restored afterwards.
    /// </summary>
    private static void AssertTheOptionWinsThenTheVariable(string variable, (string? Value, bool Expected)[] cases,
        Func<bool?, CudaOpsOptions> options, Func<CudaOpsOptions, bool> uses)
    {
        string? saved = Environment.GetEnvironmentVariable(variable);
        try
        {
            foreach ((string? value, bool expected) in cases)
            {
                Environment.SetEnvironmentVariable(variable, value);
                Assert.AreEqual(expected, uses(options(null)), $"{variable} {value ?? "unset"}");
                Assert.IsTrue(uses(options(true)), "the option wins");
                Assert.IsFalse(uses(options(false)), "the option wins");
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, saved);
        }
    }
}
