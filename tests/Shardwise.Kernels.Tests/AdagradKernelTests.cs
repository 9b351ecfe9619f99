using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;
using Shardwise.Training.Optim;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// adagrad.cu against Shardwise.Training's Adagrad (AdamOptimizer with <see cref="AdamOptions.Adagrad"/>, the host
/// step's AdagradKernel): every storage type, counts off the block and the 4-element vector, several steps, L2 weight
/// decay, a loss scale folded into grad_scale; the vector path against the element path; the skipped step.
/// </summary>
[TestClass]
public sealed class AdagradKernelTests
{
    private static readonly int[] Counts = [1, 5, 64, 1000, 4101];
    private const int Blocks = 3, Threads = 64;
    private const float LossScale = 1024f;

    private static readonly AdamOptions Adagrad = new() { Adagrad = true, Eps = 1e-10, WeightDecay = 0.1, BiasCorrection = false };

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AdagradStepsMatchTheCpuOptimizer(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(70);
        const double learningRate = 1e-2;
        foreach (int count in Counts)
        {
            float[] reference = data.NonZero(count);
            var optimizer = new AdamOptimizer(count, Adagrad);
            using var master = DeviceBuffer.From(reference, StorageType.Float32);
            using var sum = DeviceBuffer.Zeroed(count, StorageType.Float32);
            using var working = DeviceBuffer.Zeroed(count, storage);
            for (int step = 1; step <= 4; step++)
            {
                string at = $"count {count}, step {step}";
                float[] scaled = storage.Rounded(data.NonZero(count, LossScale));
                var unscaled = new float[count];
                for (int i = 0; i < count; i++) unscaled[i] = scaled[i] * (1f / LossScale);
                optimizer.Step(reference, unscaled, learningRate);

                using var grads = DeviceBuffer.From(scaled, storage);
                Launch(storage, order, master, grads, sum, working, count, (float)learningRate, 1f / LossScale, KernelArg.Null);

                Compare.Close(reference, master.ToFloats(), 1e-6f, $"master weights, {at}");
                Compare.Close(optimizer.State.ExpAvgSq, sum.ToFloats(), 1e-6f, $"sum of squares, {at}");
                Compare.Close(storage.Rounded(master.ToFloats()), working.ToFloats(), 0f, $"working copy, {at}");
            }
            CollectionAssert.AreEqual(new float[count], optimizer.State.ExpAvg, "Adagrad has no first moment");
        }
    }

    /// <summary>Buffers off their 4-element boundary take the element path: bitwise the aligned result (fp32 also without a working copy).</summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AdagradOfUnalignedBuffersEqualsTheAlignedStep(StorageType storage, SchedulerOrder order)
    {
        const int count = 1003;
        var data = new TestData(71);
        float[] weights = data.NonZero(count), sums = Array.ConvertAll(data.NonZero(count, 0.01f), Math.Abs);
        float[] grads = storage.Rounded(data.NonZero(count, LossScale));

        // offsets: elements before master, grads, s, working.
        float[][] Run(int[] offsets, bool withParams = true)
        {
            DeviceBuffer Padded(float[] values, int pad, StorageType type) => DeviceBuffer.From([.. new float[pad], .. values], type);
            using DeviceBuffer master = Padded(weights, offsets[0], StorageType.Float32), g = Padded(grads, offsets[1], storage);
            using DeviceBuffer s = Padded(sums, offsets[2], StorageType.Float32), working = Padded(new float[count], offsets[3], storage);
            nint At(DeviceBuffer buffer, int pad) => buffer.Pointer + pad * buffer.ElementBytes;
            KernelArg workingArg = withParams ? At(working, offsets[3]) : KernelArg.Null;
            SimtEmulator.Launch($"adagrad_step_{storage.Suffix()}", Blocks, Threads, order,
                At(master, offsets[0]), At(g, offsets[1]), At(s, offsets[2]), workingArg, (long)count,
                1e-2f, 1e-10f, 0.1f, 1f / LossScale, KernelArg.Null);
            return [master.ToFloats()[offsets[0]..], s.ToFloats()[offsets[2]..],
                withParams ? working.ToFloats()[offsets[3]..] : storage.Rounded(master.ToFloats()[offsets[0]..])];
        }

        float[][] aligned = Run([0, 0, 0, 0]);
        CollectionAssert.AreNotEqual(weights, aligned[0], "the step changed the weights");
        string[] names = ["master", "sum of squares", "working copy"];
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

    [TestMethod]
    public void AdagradSkipsTheStepWhenAnOverflowWasFound()
    {
        float[] weights = new TestData(72).NonZero(100);
        using var master = DeviceBuffer.From(weights, StorageType.Float32);
        using var grads = DeviceBuffer.From(new TestData(73).NonZero(100), StorageType.Float16);
        using var sum = DeviceBuffer.Zeroed(100, StorageType.Float32);
        using var working = DeviceBuffer.Zeroed(100, StorageType.Float16);
        using var foundInf = DeviceBuffer.FromInts([1]);
        Launch(StorageType.Float16, SchedulerOrder.Forward, master, grads, sum, working, 100, 1e-2f, 1f, foundInf);
        CollectionAssert.AreEqual(weights, master.ToFloats());
        CollectionAssert.AreEqual(new float[100], sum.ToFloats());
        CollectionAssert.AreEqual(new float[100], working.ToFloats());
    }

    private static void Launch(StorageType storage, SchedulerOrder order, DeviceBuffer master, DeviceBuffer grads, DeviceBuffer sum,
        DeviceBuffer working, int count, float learningRate, float gradScale, KernelArg foundInf) =>
        SimtEmulator.Launch($"adagrad_step_{storage.Suffix()}", Blocks, Threads, order, master, grads, sum, working, (long)count,
            learningRate, (float)Adagrad.Eps, (float)Adagrad.WeightDecay, gradScale, foundInf);
}
