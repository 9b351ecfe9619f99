using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Data;
using Shardwise.Examples;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Precision;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// TinyGpt on a 16-bit CudaOps against CpuOps (category "Gpu"). The CPU reference is the engine's mixed precision on
/// the CPU: parameters and gradients rounded to the storage type, activations in fp32. The GPU also stores its
/// activations in 16 bits, so the two differ by the activations' roundings; tolerances are multiples of the storage
/// type's unit roundoff u (2⁻¹¹ fp16, 2⁻⁸ bf16), relative: the loss u, the logits 4u (L2), all gradients 4u (L2),
/// each parameter's gradient 6u (L2); over the training steps (8 on a GPU, 4 on the emulated device) each loss u and
/// the final parameters 4u (L2). Measured on the emulated device (fp16 / bf16): logits 1.8u / 1.8u, all gradients
/// 2.0u / 1.9u, the worst parameter's gradient 2.3u / 2.4u, parameters after 8 steps 1.5u / 0.65u, losses within
/// 0.03u. A wrong kernel, operand type or layout shows up as differences of order 1.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaModelHalfTests
{
    private const int Batch = 4;

    [TestMethod]
    [DataRow(StorageType.Float16, false)]
    [DataRow(StorageType.BFloat16, false)]
    [DataRow(StorageType.Float16, true)]
    [DataRow(StorageType.BFloat16, true)]
    [DataRow(StorageType.BFloat16, true, true)]
    public void TinyGptForwardAndBackwardFollowTheCpu(StorageType storage, bool fusedAttention, bool storedScores = false)
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps(storage: storage, fusedAttention: fusedAttention,
            flashDqFromStoredScores: storedScores);
        Assert.AreEqual(fusedAttention, gpu.UsesFlashAttention(Batch, TinyGpt.Context, TinyGpt.Heads, TinyGpt.Width),
            "TinyGpt's attention takes the path asked for");
        float u = storage.UnitRoundoff();
        CompiledLanguageModel<float> onCpu = TinyGpt.Compile(new CpuOps<float>(), Batch);
        CompiledLanguageModel<float> onGpu = TinyGpt.Compile<float>(gpu, Batch);
        TinyGpt.ParameterLayout.Initialize(onCpu.Parameters, seed: 3);
        TinyGpt.ParameterLayout.Initialize(onGpu.Parameters, seed: 3);
        StorageRounding.RoundInPlace(onCpu.Parameters, storage);
        var data = new TestData(21);
        int[] tokens = data.Ints(Batch * onCpu.SequenceLength, TinyGpt.VocabularySize);
        int[] targets = data.Ints(Batch * onCpu.SequenceLength, TinyGpt.VocabularySize);

        float cpuLoss = onCpu.Forward(tokens, targets), gpuLoss = onGpu.Forward(tokens, targets);
        Console.WriteLine($"{storage} loss: CPU {cpuLoss:R}, GPU {gpuLoss:R}");
        Compare.Close(cpuLoss, gpuLoss, u, "loss");
        var cpuLogits = new float[onCpu.Logits.Length];
        var gpuLogits = new float[onGpu.Logits.Length];
        onCpu.Read(onCpu.Logits, cpuLogits);
        onGpu.Read(onGpu.Logits, gpuLogits);
        Norms.RelativeClose(cpuLogits, gpuLogits, 4 * u, "logits");
        // The viewed parameters went up with the first operation, rounded; a View after it reads them back.
        CollectionAssert.AreEqual(onCpu.Parameters.ToArray(), onGpu.Parameters.ToArray(), "the GPU stores the rounded parameters");

        onCpu.ZeroGradients();
        onGpu.ZeroGradients();
        onCpu.Backward(1f);
        onGpu.Backward(1f);
        float[] cpuGradients = onCpu.Gradients.ToArray();
        StorageRounding.RoundInPlace(cpuGradients, storage); // what 16-bit gradient storage holds
        float[] gpuGradients = onGpu.Gradients.ToArray();
        Norms.RelativeClose(cpuGradients, gpuGradients, 4 * u, "all parameter gradients");
        foreach (ParameterSlot slot in TinyGpt.ParameterLayout.Slots)
        {
            Norms.RelativeClose(cpuGradients.AsSpan((int)slot.Offset, (int)slot.Length),
                gpuGradients.AsSpan((int)slot.Offset, (int)slot.Length), 6 * u, $"gradient of {slot.Name}");
        }
    }

    /// <summary>
    /// fp16 overflow through 16-bit device storage: at a loss scale of 2³⁰ the fp16 gradients overflow (∞ or NaN, read
    /// back exactly through View), the engine skips the update and (hysteresis 1) halves the scale, as on the CPU; the
    /// parameters stay.
    /// </summary>
    [TestMethod]
    public void AnFp16OverflowIsSkippedAsOnTheCpu()
    {
        const string json = """{ "train_micro_batch_size_per_gpu": 4, "fp16": { "enabled": true, "loss_scale": 0, "initial_scale_power": 30, "hysteresis": 1 } }""";
        var config = DeepSpeedConfig.Parse(json).Config;
        GpuSupport.RequireGpu();
        using CudaOps gpu = (CudaOps)TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool,
            TinyGpt.ParameterPool, BackendKind.Cuda);
        CompiledLanguageModel<float> onCpu = TinyGpt.Compile(new CpuOps<float>(), Batch);
        CompiledLanguageModel<float> onGpu = TinyGpt.Compile<float>(gpu, Batch);
        TinyGpt.ParameterLayout.Initialize(onCpu.Parameters, seed: 3);
        TinyGpt.ParameterLayout.Initialize(onGpu.Parameters, seed: 3);
        TrainingEngine cpuEngine = TrainingEngine.Initialize(onCpu, config), gpuEngine = TrainingEngine.Initialize(onGpu, config);
        var data = new TestData(22);
        int[] tokens = data.Ints(Batch * onCpu.SequenceLength, TinyGpt.VocabularySize);
        int[] targets = data.Ints(Batch * onCpu.SequenceLength, TinyGpt.VocabularySize);

        cpuEngine.Forward(tokens, targets);
        gpuEngine.Forward(tokens, targets);
        float[] before = onGpu.Parameters.ToArray(); // after an operation: the rounded values the device holds
        cpuEngine.Backward();
        gpuEngine.Backward();
        Assert.IsTrue(onGpu.Gradients.ToArray().Any(g => !float.IsFinite(g)), "the fp16 gradients overflowed on the device");
        Assert.AreEqual(StepOutcome.SkippedOverflow, cpuEngine.Step(), "CPU");
        Assert.AreEqual(StepOutcome.SkippedOverflow, gpuEngine.Step(), "GPU");
        Assert.AreEqual(cpuEngine.LossScaler.Scale, gpuEngine.LossScaler.Scale, "the scale after the skip");
        Assert.AreEqual((double)(1 << 29), gpuEngine.LossScaler.Scale, "hysteresis 1: the first overflow halves the scale");
        CollectionAssert.AreEqual(before, onGpu.Parameters.ToArray(), "a skipped step leaves the parameters");
        Assert.IsTrue(onGpu.Gradients.ToArray().All(g => g == 0f), "and zeroes the gradients");
    }

    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void TrainingStepsFollowTheCpu(StorageType storage)
    {
        // fp16 with the dynamic loss scaler: 2^12 to start, doubled after every 2 clean steps (DeepSpeed's rule), so the
        // steps run at growing scales (up to 65536 in 8 steps) and the fp16 gradients carry them; bf16 needs no scaling.
        string precision = storage == StorageType.Float16
            ? """ "fp16": { "enabled": true, "loss_scale": 0, "initial_scale_power": 12, "loss_scale_window": 2 } """
            : """ "bf16": { "enabled": true } """;
        string json = $$"""{ "train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0, {{precision}}, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } } }""";
        var config = DeepSpeedConfig.Parse(json).Config;
        GpuSupport.RequireGpu();
        using CudaOps gpu = (CudaOps)TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool,
            TinyGpt.ParameterPool, BackendKind.Cuda);
        Assert.AreEqual(storage, gpu.Storage, "CreateBackend passes the config's precision");
        float u = storage.UnitRoundoff();

        CompiledLanguageModel<float> onCpu = TinyGpt.Compile(new CpuOps<float>(), Batch);
        CompiledLanguageModel<float> onGpu = TinyGpt.Compile<float>(gpu, Batch);
        TinyGpt.ParameterLayout.Initialize(onCpu.Parameters, seed: 3);
        TinyGpt.ParameterLayout.Initialize(onGpu.Parameters, seed: 3);
        TrainingEngine cpuEngine = TrainingEngine.Initialize(onCpu, config), gpuEngine = TrainingEngine.Initialize(onGpu, config);
        // One rank at ZeRO 0: the device runs the step (fp32 masters in device memory, CudaOps.FusedAdam.cs), the CPU
        // engine its host step, so this also checks the fused step in 16-bit storage against the host one.
        Assert.IsTrue(gpuEngine.FusedOptimizer, "the 16-bit CudaOps takes the fused step");
        BatchSampler sampler = new AdditionTask().CreateDataset(2000, seed: 5)
            .CreateSampler(DataSplit.Train, Batch, onCpu.SequenceLength, seed: 7);
        var inputs = new int[Batch * onCpu.SequenceLength];
        var targets = new int[inputs.Length];

        int allocationsAfterFirst = -1;
        // 8 steps on a GPU; 4 on the emulated device (GpuSupport.Emulated), where each step costs about 20 s, same tolerances.
        var losses = new (float Cpu, float Gpu)[GpuSupport.Emulated ? 4 : 8];
        for (int step = 0; step < losses.Length; step++)
        {
            sampler.NextBatch(inputs, targets);
            // The device as train and bench run it (ForwardBackward: the fused cross-entropy kernel), the CPU as the
            // pair of calls; TinyGptForwardAndBackwardFollowTheCpu checks the device's pair.
            float cpuLoss = cpuEngine.Forward(inputs, targets), gpuLoss = gpuEngine.ForwardBackward(inputs, targets);
            cpuEngine.Backward();
            StepOutcome cpuOutcome = cpuEngine.Step(), gpuOutcome = gpuEngine.Step();
            Assert.AreEqual(cpuOutcome, gpuOutcome, $"step {step} outcome (loss scale {cpuEngine.LossScaler.Scale})");
            losses[step] = (cpuLoss, gpuLoss);
            if (step == 0) allocationsAfterFirst = gpu.DeviceAllocations;
        }

        Console.WriteLine(string.Join("\n", losses.Select((l, i) => $"{storage} step {i}: CPU {l.Cpu:R}, GPU {l.Gpu:R}")));
        Console.WriteLine($"loss scale after the steps: CPU {cpuEngine.LossScaler.Scale}, GPU {gpuEngine.LossScaler.Scale}");
        for (int step = 0; step < losses.Length; step++)
            Compare.Close(losses[step].Cpu, losses[step].Gpu, u, $"loss at step {step}");
        Assert.IsTrue(losses[^1].Gpu < losses[0].Gpu, "the GPU run learns");
        if (storage == StorageType.Float16)
        {
            Assert.AreEqual(cpuEngine.LossScaler.Scale, gpuEngine.LossScaler.Scale, "the same loss-scale history");
            Assert.IsTrue(gpuEngine.LossScaler.Scale > 4096, $"the dynamic scale grew (now {gpuEngine.LossScaler.Scale})");
        }

        Norms.RelativeClose(onCpu.Parameters, onGpu.Parameters, 4 * u, "parameters after the steps");
        Assert.AreEqual(allocationsAfterFirst, gpu.DeviceAllocations, "device allocations after the first step");
        // The engine's memory report counts what the device arenas hold: 2 bytes per parameter, gradient and
        // activation element (the fp32 statistics are planned at two elements each, so the activation arena is 16-bit).
        Assert.AreEqual(gpu.ArenaBytes(Arena.Parameters), gpuEngine.Memory.Parameters, "reported parameter bytes");
        Assert.AreEqual(gpu.ArenaBytes(Arena.Gradients), gpuEngine.Memory.Gradients, "reported gradient bytes");
        Assert.AreEqual(gpu.ArenaBytes(Arena.Activations), gpuEngine.Memory.Activations, "reported activation bytes");
        Assert.AreEqual(2L * TinyGpt.ParameterLayout.TotalElements, gpuEngine.Memory.Parameters, "2 bytes per parameter");
        Assert.AreEqual(2L * Batch * onGpu.Plan.ArenaElementsPerSample, gpu.ArenaBytes(Arena.Activations), "2 bytes per activation element");
    }

    /// <summary>
    /// The build-time memory estimate (the generated <c>MemoryEstimate</c> that SW0014 checks: mixed precision, ZeRO 0,
    /// the [Model]'s one sample) is what a 16-bit CudaOps allocates for parameters, gradients and activations. Before
    /// the fp32 statistics were planned at two elements each, the activation arena was twice the estimate.
    /// </summary>
    [TestMethod]
    [DataRow(StorageType.Float16)]
    [DataRow(StorageType.BFloat16)]
    public void TheBuildTimeEstimateIsWhatTheDeviceArenasHold(StorageType storage)
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps(storage: storage);
        CompiledLanguageModel<float> program = TinyGpt.Compile<float>(gpu, 1);
        var estimate = TinyGpt.MemoryEstimate.Single(row => row.PipelineStage == 0 && row.ZeroStage == 0 && row.WorkingBytes == 2);
        Assert.AreEqual(estimate.Parameters, gpu.ArenaBytes(Arena.Parameters), "parameters");
        Assert.AreEqual(estimate.Gradients, gpu.ArenaBytes(Arena.Gradients), "gradients");
        Assert.AreEqual(estimate.Activations, gpu.ArenaBytes(Arena.Activations), "activations");
        Assert.AreEqual(2L * program.Plan.ArenaElementsPerSample, estimate.Activations, "2 bytes per planned element");
    }
}
