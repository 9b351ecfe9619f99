using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;
using Shardwise.Training.Optim;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// lion.cu against Shardwise.Training's Lion (AdamOptimizer with <see cref="AdamOptions.Lion"/>, the host step's
/// LionKernel): every storage type, counts off the block and the 4-element vector, several steps, weight decay,
/// a loss scale folded into grad_scale; the vector path against the element path; sign(0) = 0; the skipped step.
/// </summary>
[TestClass]
public sealed class LionKernelTests
{
    private static readonly int[] Counts = [1, 5, 64, 1000, 4101];
    private const int Blocks = 3, Threads = 64;
    private const float LossScale = 1024f;

    private static readonly AdamOptions Lion = new() { Lion = true, Beta1 = 0.9, Beta2 = 0.99, WeightDecay = 0.1, BiasCorrection = false };

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void LionStepsMatchTheCpuOptimizer(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(60);
        const double learningRate = 1e-3;
        foreach (int count in Counts)
        {
            float[] reference = data.NonZero(count);
            var optimizer = new AdamOptimizer(count, Lion);
            using var master = DeviceBuffer.From(reference, StorageType.Float32);
            using var m = DeviceBuffer.Zeroed(count, StorageType.Float32);
            using var working = DeviceBuffer.Zeroed(count, storage);
            for (int step = 1; step <= 4; step++)
            {
                string at = $"count {count}, step {step}";
                float[] scaled = storage.Rounded(data.NonZero(count, LossScale));
                var unscaled = new float[count];
                for (int i = 0; i < count; i++) unscaled[i] = scaled[i] * (1f / LossScale);
                optimizer.Step(reference, unscaled, learningRate);

                using var grads = DeviceBuffer.From(scaled, storage);
                Launch(storage, order, master, grads, m, working, count, (float)learningRate, 1f / LossScale, KernelArg.Null);

                Compare.Close(reference, master.ToFloats(), 1e-6f, $"master weights, {at}");
                Compare.Close(optimizer.State.ExpAvg, m.ToFloats(), 1e-6f, $"momentum, {at}");
                Compare.Close(storage.Rounded(master.ToFloats()), working.ToFloats(), 0f, $"working copy, {at}");
            }
            CollectionAssert.AreEqual(new float[count], optimizer.State.ExpAvgSq, "Lion has no second moment");
        }
    }

    /// <summary>
    /// Buffers one or three elements off their 4-element boundary take the element path: bitwise the aligned result.
    /// fp32 also without a working copy (params = null, as fp32 training launches it).
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void LionOfUnalignedBuffersEqualsTheAlignedStep(StorageType storage, SchedulerOrder order)
    {
        const int count = 1003;
        var data = new TestData(61);
        float[] weights = data.NonZero(count), momentum = data.NonZero(count, 0.01f);
        float[] grads = storage.Rounded(data.NonZero(count, LossScale));

        // offsets: elements before master, grads, m, working.
        float[][] Run(int[] offsets, bool withParams = true)
        {
            DeviceBuffer Padded(float[] values, int pad, StorageType type) => DeviceBuffer.From([.. new float[pad], .. values], type);
            using DeviceBuffer master = Padded(weights, offsets[0], StorageType.Float32), g = Padded(grads, offsets[1], storage);
            using DeviceBuffer m = Padded(momentum, offsets[2], StorageType.Float32), working = Padded(new float[count], offsets[3], storage);
            nint At(DeviceBuffer buffer, int pad) => buffer.Pointer + pad * buffer.ElementBytes;
            KernelArg workingArg = withParams ? At(working, offsets[3]) : KernelArg.Null;
            SimtEmulator.Launch($"lion_step_{storage.Suffix()}", Blocks, Threads, order,
                At(master, offsets[0]), At(g, offsets[1]), At(m, offsets[2]), workingArg, (long)count,
                3e-3f, 0.9f, 0.1f, 0.99f, 0.01f, 0.1f, 1f / LossScale, KernelArg.Null);
            return [master.ToFloats()[offsets[0]..], m.ToFloats()[offsets[2]..],
                withParams ? working.ToFloats()[offsets[3]..] : storage.Rounded(master.ToFloats()[offsets[0]..])];
        }

        float[][] aligned = Run([0, 0, 0, 0]);
        CollectionAssert.AreNotEqual(weights, aligned[0], "the step changed the weights");
        string[] names = ["master", "momentum", "working copy"];
        foreach (int[] offsets in new[] { new[] { 1, 1, 1, 1 }, [0, 0, 0, 1], [0, 3, 0, 0], [0, 0, 2, 0] })
        {
            float[][] shifted = Run(offsets);
            for (int i = 0; i < names.Length; i++)
                CollectionAssert.AreEqual(aligned[i], shifted[i], $"{names[i]}, offsets {string.Join(",", offsets)}");
        }
        if (storage == StorageType.Float32)
        {
            float[][] noParams = Run([0, 0, 0, 0], withParams: false);
            for (int i = 0; i < names.Length; i++) CollectionAssert.AreEqual(aligned[i], noParams[i], $"{names[i]}, params null");
        }
    }

    /// <summary>sign(0) = 0: where momentum and gradient are both zero only the decay moves the weight.</summary>
    [TestMethod]
    public void LionOfAZeroInterpolationOnlyDecays()
    {
        float[] weights = new TestData(62).NonZero(9);
        float[] grads = new float[9], expected = new float[9];
        grads[4] = 0.5f; // one element does step: -lr·sign(0.1·0.5)
        const float lr = 0.01f, decay = 1f - lr * 0.1f;
        for (int i = 0; i < 9; i++) expected[i] = weights[i] * decay - (i == 4 ? lr : 0f);
        using var master = DeviceBuffer.From(weights, StorageType.Float32);
        using var g = DeviceBuffer.From(grads, StorageType.Float32);
        using var m = DeviceBuffer.Zeroed(9, StorageType.Float32);
        SimtEmulator.Launch("lion_step_f32", 1, 32, SchedulerOrder.Forward, master, g, m, KernelArg.Null, 9L,
            lr, 0.9f, 0.1f, 0.99f, 0.01f, 0.1f, 1f, KernelArg.Null);
        CollectionAssert.AreEqual(expected, master.ToFloats());
    }

    [TestMethod]
    public void LionSkipsTheStepWhenAnOverflowWasFound()
    {
        float[] weights = new TestData(63).NonZero(100);
        using var master = DeviceBuffer.From(weights, StorageType.Float32);
        using var grads = DeviceBuffer.From(new TestData(64).NonZero(100), StorageType.Float16);
        using var m = DeviceBuffer.Zeroed(100, StorageType.Float32);
        using var working = DeviceBuffer.Zeroed(100, StorageType.Float16);
        using var foundInf = DeviceBuffer.FromInts([1]);
        Launch(StorageType.Float16, SchedulerOrder.Forward, master, grads, m, working, 100, 1e-3f, 1f, foundInf);
        CollectionAssert.AreEqual(weights, master.ToFloats());
        CollectionAssert.AreEqual(new float[100], m.ToFloats());
        CollectionAssert.AreEqual(new float[100], working.ToFloats());
    }

    private static void Launch(StorageType storage, SchedulerOrder order, DeviceBuffer master, DeviceBuffer grads, DeviceBuffer m,
        DeviceBuffer working, int count, float learningRate, float gradScale, KernelArg foundInf) =>
        SimtEmulator.Launch($"lion_step_{storage.Suffix()}", Blocks, Threads, order, master, grads, m, working, (long)count,
            learningRate, (float)Lion.Beta1, (float)(1 - Lion.Beta1), (float)Lion.Beta2, (float)(1 - Lion.Beta2),
            (float)Lion.WeightDecay, gradScale, foundInf);
}
