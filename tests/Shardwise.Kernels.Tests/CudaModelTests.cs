using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Data;
using Shardwise.Examples;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// TinyGpt (4 blocks, width 128, 4 heads, context 64, vocabulary 65, tied head) on CudaOps against CpuOps: one
/// forward/backward, and a few AdamW training steps through the engine (category "Gpu").
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaModelTests
{
    private const int Batch = 4;

    private static (int[] Tokens, int[] Targets) Batch0(int sequence)
    {
        var data = new TestData(21);
        int[] tokens = data.Ints(Batch * sequence, TinyGpt.VocabularySize);
        int[] targets = data.Ints(Batch * sequence, TinyGpt.VocabularySize);
        return (tokens, targets);
    }

    [TestMethod]
    public void TinyGptForwardAndBackwardMatchTheCpu()
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        CompiledLanguageModel<float> onCpu = TinyGpt.Compile(new CpuOps<float>(), Batch);
        CompiledLanguageModel<float> onGpu = TinyGpt.Compile<float>(gpu, Batch);
        TinyGpt.ParameterLayout.Initialize(onCpu.Parameters, seed: 3);
        TinyGpt.ParameterLayout.Initialize(onGpu.Parameters, seed: 3);
        CollectionAssert.AreEqual(onCpu.Parameters.ToArray(), onGpu.Parameters.ToArray());
        (int[] tokens, int[] targets) = Batch0(onCpu.SequenceLength);

        float cpuLoss = onCpu.Forward(tokens, targets), gpuLoss = onGpu.Forward(tokens, targets);
        Console.WriteLine($"loss: CPU {cpuLoss:R}, GPU {gpuLoss:R}");
        Compare.Close(cpuLoss, gpuLoss, 1e-5f, "loss");
        var cpuLogits = new float[onCpu.Logits.Length];
        var gpuLogits = new float[onGpu.Logits.Length];
        onCpu.Read(onCpu.Logits, cpuLogits);
        onGpu.Read(onGpu.Logits, gpuLogits);
        Norms.RelativeClose(cpuLogits, gpuLogits, 1e-5, "logits");

        onCpu.ZeroGradients();
        onGpu.ZeroGradients();
        onCpu.Backward(1f);
        onGpu.Backward(1f);
        Norms.RelativeClose(onCpu.Gradients, onGpu.Gradients, 1e-4, "all parameter gradients");
        foreach (ParameterSlot slot in TinyGpt.ParameterLayout.Slots)
        {
            Norms.RelativeClose(onCpu.Gradients.Slice((int)slot.Offset, (int)slot.Length),
                onGpu.Gradients.Slice((int)slot.Offset, (int)slot.Length), 1e-3, $"gradient of {slot.Name}");
        }
    }

    [TestMethod]
    public void TrainingStepsOnTheGpuFollowTheCpuAndAllocateNothingAfterTheFirst()
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        const string json = """{ "train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0, "optimizer": { "type": "AdamW", "params": { "lr": 1e-3 } } }""";
        var config = DeepSpeedConfig.Parse(json).Config;
        CompiledLanguageModel<float> onCpu = TinyGpt.Compile(new CpuOps<float>(), Batch);
        CompiledLanguageModel<float> onGpu = TinyGpt.Compile<float>(gpu, Batch);
        TinyGpt.ParameterLayout.Initialize(onCpu.Parameters, seed: 3);
        TinyGpt.ParameterLayout.Initialize(onGpu.Parameters, seed: 3);
        TrainingEngine cpuEngine = TrainingEngine.Initialize(onCpu, config), gpuEngine = TrainingEngine.Initialize(onGpu, config);
        BatchSampler sampler = new AdditionTask().CreateDataset(2000, seed: 5)
            .CreateSampler(DataSplit.Train, Batch, onCpu.SequenceLength, seed: 7);
        var inputs = new int[Batch * onCpu.SequenceLength];
        var targets = new int[inputs.Length];

        int allocationsAfterFirst = -1;
        // On the emulated device every step runs each kernel thread as a CPU fiber (seconds per step): fewer steps,
        // the same tolerances.
        var losses = new (float Cpu, float Gpu)[GpuSupport.Emulated ? 4 : 8];
        for (int step = 0; step < losses.Length; step++)
        {
            sampler.NextBatch(inputs, targets);
            float cpuLoss = cpuEngine.Forward(inputs, targets), gpuLoss = gpuEngine.Forward(inputs, targets);
            cpuEngine.Backward();
            gpuEngine.Backward();
            cpuEngine.Step();
            gpuEngine.Step();
            losses[step] = (cpuLoss, gpuLoss);
            if (step == 0) allocationsAfterFirst = gpu.DeviceAllocations;
        }

        Console.WriteLine(string.Join("\n", losses.Select((l, i) => $"step {i}: CPU {l.Cpu:R}, GPU {l.Gpu:R}")));
        for (int step = 0; step < losses.Length; step++)
            Compare.Close(losses[step].Cpu, losses[step].Gpu, 1e-3f, $"loss at step {step}");
        Assert.IsTrue(losses[^1].Gpu < losses[0].Gpu, "the GPU run learns");
        Norms.RelativeClose(onCpu.Parameters, onGpu.Parameters, 1e-3, "parameters after the steps");
        Assert.AreEqual(allocationsAfterFirst, gpu.DeviceAllocations, "device allocations after the first step");
    }
}
