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
using Shardwise.Training.Optim;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// CudaOps' optimizer step on the device (CudaOps.FusedAdam.cs) against the CPU reference
/// <see cref="FusedAdamReference"/> (category "Gpu"): the measurement (overflow flag and Σg²), Adam and AdamW updates
/// with a gradient multiplier, over the whole arena and over one ZeRO-1 partition of it (aligned for the vector path or
/// not), the state read/write of checkpoints, no device allocation per step; and TinyGpt trained through the engine's
/// fused path against the host step on the CPU.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaFusedAdamTests
{
    private const double Beta1 = 0.9, Beta2 = 0.95, LearningRate = 3e-3;

    private static FusedAdamStep StepScalars(int step, bool adamWMode, float multiplier)
    {
        double bc1 = 1 - Math.Pow(Beta1, step), bc2 = 1 - Math.Pow(Beta2, step);
        return new FusedAdamStep((float)LearningRate, (float)Beta1, (float)(1 - Beta1), (float)Beta2, (float)(1 - Beta2),
            1e-8f, 0.1f, adamWMode, (float)(1 / bc1), (float)(1 / bc2), multiplier);
    }

    [TestMethod]
    [DataRow(true, 0, 70001)]
    [DataRow(false, 0, 70001)]
    [DataRow(true, 35008, 34993)] // the last of two partitions: starts at a multiple of 16 elements, ends with a short group
    [DataRow(false, 17, 35003)]   // a range that starts unaligned: every group goes element by element
    public void DeviceStepsFollowTheCpuReference(bool adamWMode, int start, int length)
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        const int count = 70001;
        const float lossScale = 1024f;
        var (cpu, reference, data, weights) = Twins(gpu, count, seed: 61);
        reference.CreateOptimizerState(StorageType.Float32, start, length);
        gpu.CreateOptimizerState(StorageType.Float32, start, length);
        bool partition = length < count;
        int allocations = gpu.DeviceAllocations;

        int adamStep = 0;
        for (int round = 1; round <= 5; round++)
        {
            string at = $"adam_w_mode {adamWMode}, [{start}, {start + length}), round {round}";
            float[] gradients = data.NonZero(count, lossScale);
            if (round == 3) gradients[start + data.Ints(1, length)[0]] = float.PositiveInfinity;
            // Outside the state's range nothing is read: another rank's partition, not reduced here.
            if (partition) gradients[start == 0 ? count - 1 : 0] = float.NaN;
            cpu.Load(gradients, new Slice(Arena.Gradients, 0, count));
            gpu.Load(gradients, new Slice(Arena.Gradients, 0, count));

            GradientMeasurement expected = reference.MeasureGradients(checkOverflow: true), actual = gpu.MeasureGradients(checkOverflow: true);
            Console.WriteLine($"{at}: overflow {expected.Overflow}/{actual.Overflow}, Σg² CPU {expected.ScaledSumOfSquares:R}, GPU {actual.ScaledSumOfSquares:R}");
            Assert.AreEqual(expected.Overflow, actual.Overflow, $"overflow flag, {at}");
            if (expected.Overflow) continue; // the engine skips: nothing runs
            Assert.IsTrue(Math.Abs(actual.ScaledSumOfSquares - expected.ScaledSumOfSquares) <= 1e-5 * expected.ScaledSumOfSquares,
                $"Σg², {at}");

            // Unscale and clip by one half, as the engine's multiplier would.
            FusedAdamStep step = StepScalars(++adamStep, adamWMode, 0.5f / lossScale);
            reference.AdamStep(step);
            gpu.AdamStep(step);
            var (master, expAvg, expAvgSq) = ReadState(reference, length);
            var (gpuMaster, gpuExpAvg, gpuExpAvgSq) = ReadState(gpu, length);
            Compare.Close(master, gpuMaster, 1e-6f, $"master weights, {at}");
            Compare.Close(expAvg, gpuExpAvg, 1e-6f, $"exp_avg, {at}");
            Compare.Close(expAvgSq, gpuExpAvgSq, 1e-6f, $"exp_avg_sq, {at}");
            Compare.Close(cpu.View(Arena.Parameters), gpu.View(Arena.Parameters), 1e-6f, $"working parameters, {at}");
            Assert.IsFalse(master.SequenceEqual(weights.AsSpan(start, length).ToArray()), "the weights must move");
            float[] working = gpu.View(Arena.Parameters).ToArray();
            Assert.IsTrue(working.AsSpan(0, start).SequenceEqual(weights.AsSpan(0, start))
                          && working.AsSpan(start + length).SequenceEqual(weights.AsSpan(start + length)),
                $"parameters outside [{start}, {start + length}) stay as they were, {at}");
        }
        // exp_avg_sq is allocated by the first Adam step (Lion never needs it), as torch creates optimizer state in step().
        Assert.AreEqual(allocations + 1, gpu.DeviceAllocations, "the steps allocate nothing on the device but exp_avg_sq, once");

        // Checkpoint round trip: what is written is what is read, and the working copy follows the masters.
        float[] newMaster = data.NonZero(length), newExpAvg = data.NonZero(length), newExpAvgSq = data.NonZero(length).Select(Math.Abs).ToArray();
        gpu.WriteMoments(newExpAvg, newExpAvgSq);
        gpu.WriteMasterWeights(newMaster);
        var (readMaster, readExpAvg, readExpAvgSq) = ReadState(gpu, length);
        CollectionAssert.AreEqual(newMaster, readMaster);
        CollectionAssert.AreEqual(newExpAvg, readExpAvg);
        CollectionAssert.AreEqual(newExpAvgSq, readExpAvgSq);
        CollectionAssert.AreEqual(newMaster, gpu.View(Arena.Parameters).Slice(start, length).ToArray(), "fp32: the parameter arena is the master copy");
        Assert.ThrowsExactly<ArgumentException>(() => gpu.WriteMasterWeights(new float[length + 1]), "a write must cover the state's range exactly");
    }

    /// <summary>
    /// <see cref="IFusedOptimizerOps.LionStep"/> (lion.cu) against the reference in fp32, over the whole arena and over an
    /// unaligned partition: masters, momentum and working copy after several steps; exp_avg_sq reads as zeros and is
    /// never allocated (one moment on the device), also when a checkpoint writes its zeros back.
    /// </summary>
    [TestMethod]
    [DataRow(0, 70001)]
    [DataRow(17, 35003)]
    public void DeviceLionStepsFollowTheCpuReference(int start, int length)
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        const int count = 70001;
        const float lossScale = 1024f;
        var (cpu, reference, data, weights) = Twins(gpu, count, seed: 62);
        int before = gpu.DeviceAllocations;
        reference.CreateOptimizerState(StorageType.Float32, start, length);
        gpu.CreateOptimizerState(StorageType.Float32, start, length);
        int allocations = gpu.DeviceAllocations;
        for (int round = 1; round <= 3; round++)
        {
            string at = $"[{start}, {start + length}), round {round}";
            float[] gradients = data.NonZero(count, lossScale);
            cpu.Load(gradients, new Slice(Arena.Gradients, 0, count));
            gpu.Load(gradients, new Slice(Arena.Gradients, 0, count));
            var step = new FusedLionStep(1e-3f, 0.9f, 0.1f, 0.99f, 0.01f, 0.1f, 0.5f / lossScale);
            reference.LionStep(step);
            gpu.LionStep(step);
            var (master, expAvg, expAvgSq) = ReadState(reference, length);
            var (gpuMaster, gpuExpAvg, gpuExpAvgSq) = ReadState(gpu, length);
            Compare.Close(master, gpuMaster, 1e-6f, $"master weights, {at}");
            Compare.Close(expAvg, gpuExpAvg, 1e-6f, $"momentum, {at}");
            CollectionAssert.AreEqual(new float[length], gpuExpAvgSq, $"Lion has no exp_avg_sq, {at}");
            CollectionAssert.AreEqual(expAvgSq, gpuExpAvgSq, $"exp_avg_sq, {at}");
            Compare.Close(cpu.View(Arena.Parameters), gpu.View(Arena.Parameters), 1e-6f, $"working parameters, {at}");
            Assert.IsFalse(master.SequenceEqual(weights.AsSpan(start, length).ToArray()), "the weights must move");
        }
        gpu.WriteMoments(data.NonZero(length), new float[length]); // a Lion checkpoint: zeros for exp_avg_sq
        Assert.AreEqual(allocations, gpu.DeviceAllocations, "the steps and Lion's checkpoint allocate nothing on the device");
        Assert.IsTrue(allocations - before >= 2, "the momentum and the measurement were allocated");

        // The first Adam step allocates exp_avg_sq (zeroed) and uses it.
        float[] expAvgSqSeen = new float[length];
        gpu.AdamStep(StepScalars(1, adamWMode: true, 1f / lossScale));
        gpu.ReadMoments(new float[length], expAvgSqSeen);
        Assert.AreEqual(allocations + 1, gpu.DeviceAllocations, "exp_avg_sq is allocated by Adam's first step");
        Assert.IsTrue(expAvgSqSeen.Any(v => v > 0), "Adam wrote its second moment");
    }

    /// <summary>
    /// <see cref="IFusedOptimizerOps.AdagradStep"/> (adagrad.cu) against the reference in fp32 over an unaligned partition:
    /// masters, the sum of squares (exp_avg_sq) and the working copy after several steps; exp_avg stays zero.
    /// </summary>
    [TestMethod]
    public void DeviceAdagradStepsFollowTheCpuReference()
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        const int count = 70001, start = 17, length = 35003;
        const float lossScale = 1024f;
        var (cpu, reference, data, weights) = Twins(gpu, count, seed: 63);
        reference.CreateOptimizerState(StorageType.Float32, start, length);
        gpu.CreateOptimizerState(StorageType.Float32, start, length);
        for (int round = 1; round <= 3; round++)
        {
            string at = $"round {round}";
            float[] gradients = data.NonZero(count, lossScale);
            cpu.Load(gradients, new Slice(Arena.Gradients, 0, count));
            gpu.Load(gradients, new Slice(Arena.Gradients, 0, count));
            var step = new FusedAdagradStep(1e-2f, 1e-10f, 0.01f, 0.5f / lossScale);
            reference.AdagradStep(step);
            gpu.AdagradStep(step);
            var (master, expAvg, expAvgSq) = ReadState(reference, length);
            var (gpuMaster, gpuExpAvg, gpuExpAvgSq) = ReadState(gpu, length);
            Compare.Close(master, gpuMaster, 1e-6f, $"master weights, {at}");
            Compare.Close(expAvgSq, gpuExpAvgSq, 1e-6f, $"sum of squares, {at}");
            CollectionAssert.AreEqual(new float[length], gpuExpAvg, $"Adagrad has no exp_avg, {at}");
            CollectionAssert.AreEqual(expAvg, gpuExpAvg, $"exp_avg, {at}");
            Compare.Close(cpu.View(Arena.Parameters), gpu.View(Arena.Parameters), 1e-6f, $"working parameters, {at}");
            Assert.IsTrue(gpuExpAvgSq.All(v => v > 0), "every element accumulated a square");
        }
    }

    /// <summary>The CPU twin of <paramref name="gpu"/> and its reference step, both holding the same random weights and a gradient arena.</summary>
    private static (CpuOps<float> Cpu, FusedAdamReference Reference, TestData Data, float[] Weights) Twins(CudaOps gpu, int count, int seed)
    {
        var cpu = new CpuOps<float>();
        var data = new TestData(seed);
        float[] weights = data.NonZero(count);
        foreach (ITensorOps<float> ops in new ITensorOps<float>[] { cpu, gpu })
        {
            ops.Allocate(Arena.Parameters, count);
            ops.Allocate(Arena.Gradients, count);
            ops.Load(weights, new Slice(Arena.Parameters, 0, count));
        }
        return (cpu, new FusedAdamReference(cpu), data, weights);
    }

    private static (float[] Master, float[] ExpAvg, float[] ExpAvgSq) ReadState(IFusedOptimizerOps ops, int count)
    {
        float[] master = new float[count], expAvg = new float[count], expAvgSq = new float[count];
        ops.ReadMasterWeights(master);
        ops.ReadMoments(expAvg, expAvgSq);
        return (master, expAvg, expAvgSq);
    }

    /// <summary>
    /// One optimizer (L2 mode: the device step's weight-decay modes are both covered above); 4 updates, 2 on the
    /// emulated device (a TinyGpt micro-step takes about 15 s there).
    /// </summary>
    [TestMethod]
    public void TinyGptTrainsThroughTheFusedStepLikeTheHostStep()
    {
        const string name = "Adam with L2";
        const string optimizer = """{ "type": "Adam", "params": { "lr": 1e-3, "weight_decay": 0.1, "adam_w_mode": false } }""";
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        string json = $$"""{ "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2, "gradient_clipping": 0.5, "optimizer": {{optimizer}} }""";
        var config = DeepSpeedConfig.Parse(json).Config;
        CompiledLanguageModel<float> onCpu = TinyGpt.Compile(new CpuOps<float>(), 4);
        CompiledLanguageModel<float> onGpu = TinyGpt.Compile<float>(gpu, 4);
        TinyGpt.ParameterLayout.Initialize(onCpu.Parameters, seed: 3);
        TinyGpt.ParameterLayout.Initialize(onGpu.Parameters, seed: 3);
        TrainingEngine cpuEngine = TrainingEngine.Initialize(onCpu, config), gpuEngine = TrainingEngine.Initialize(onGpu, config);
        Assert.IsFalse(cpuEngine.FusedOptimizer);
        Assert.IsTrue(gpuEngine.FusedOptimizer, "fp32 at ZeRO stage 0 on one GPU steps on the device");
        BatchSampler sampler = new AdditionTask().CreateDataset(2000, seed: 5).CreateSampler(DataSplit.Train, 4, onCpu.SequenceLength, seed: 7);
        var inputs = new int[4 * onCpu.SequenceLength];
        var targets = new int[inputs.Length];

        int micro = GpuSupport.Emulated ? 4 : 8;
        int allocationsAfterFirstUpdate = -1;
        for (int step = 0; step < micro; step++)
        {
            sampler.NextBatch(inputs, targets);
            float cpuLoss = cpuEngine.Forward(inputs, targets), gpuLoss = gpuEngine.Forward(inputs, targets);
            cpuEngine.Backward();
            gpuEngine.Backward();
            Assert.AreEqual(cpuEngine.Step(), gpuEngine.Step(), $"{name}: outcome at micro-step {step}");
            Console.WriteLine($"{name} micro-step {step}: loss CPU {cpuLoss:R}, GPU {gpuLoss:R}; norm CPU {cpuEngine.LastGradientNorm:R}, GPU {gpuEngine.LastGradientNorm:R}");
            Compare.Close(cpuLoss, gpuLoss, 1e-3f, $"{name}: loss at micro-step {step}");
            Assert.IsTrue(Math.Abs(cpuEngine.LastGradientNorm - gpuEngine.LastGradientNorm) <= 1e-3 * cpuEngine.LastGradientNorm, $"{name}: gradient norm");
            if (step == 1) allocationsAfterFirstUpdate = gpu.DeviceAllocations;
        }
        Assert.IsTrue(cpuEngine.LastGradientNorm > 0.5, "clipping must be active");
        Assert.AreEqual(allocationsAfterFirstUpdate, gpu.DeviceAllocations, "device allocations after the first update");
        var (cpuMaster, cpuExpAvg, cpuExpAvgSq) = cpuEngine.ExportFullState();
        var (gpuMaster, gpuExpAvg, gpuExpAvgSq) = gpuEngine.ExportFullState();
        Norms.RelativeClose(cpuMaster, gpuMaster, 1e-3, $"{name}: master weights");
        Norms.RelativeClose(cpuExpAvg, gpuExpAvg, 1e-2, $"{name}: exp_avg");
        Norms.RelativeClose(cpuExpAvgSq, gpuExpAvgSq, 1e-2, $"{name}: exp_avg_sq");
        Assert.AreEqual(cpuEngine.Optimizer.State.Step, gpuEngine.Optimizer.State.Step);
    }
}
