using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;
using Shardwise.Training.Optim;
using Shardwise.Training.Precision;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// adamw.cu, global_norm.cu and overflow.cu against Shardwise.Training's AdamOptimizer (AdamW and L2 modes),
/// GradientClipping.SumOfSquares and OverflowCheck.HasInfOrNaN.
/// </summary>
[TestClass]
public sealed class OptimizerKernelTests
{
    private static readonly int[] Counts = [1, 5, 64, 1000, 4101];
    private const int Blocks = 3, Threads = 64;

    private static readonly AdamOptions AdamW = new()
    {
        Beta1 = 0.9, Beta2 = 0.95, Eps = 1e-8, WeightDecay = 0.1, AdamWMode = true, BiasCorrection = true,
    };

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AdamWStepsMatchTheCpuOptimizer(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(50);
        const double learningRate = 3e-3;
        const float lossScale = 1024f;
        foreach (bool adamWMode in new[] { true, false })
        foreach (int count in Counts)
        {
            AdamOptions options = AdamW with { AdamWMode = adamWMode };
            float[] reference = data.NonZero(count);
            var optimizer = new AdamOptimizer(count, options);
            using var master = DeviceBuffer.From(reference, StorageType.Float32);
            using var m = DeviceBuffer.Zeroed(count, StorageType.Float32);
            using var v = DeviceBuffer.Zeroed(count, StorageType.Float32);
            using var working = DeviceBuffer.Zeroed(count, storage);
            for (int step = 1; step <= 3; step++)
            {
                string at = $"adam_w_mode {adamWMode}, count {count}, step {step}";
                // Scaled gradients as the backward pass stores them; the kernel unscales by grad_scale = 1/lossScale.
                float[] scaled = storage.Rounded(data.NonZero(count, lossScale));
                var unscaled = new float[count];
                for (int i = 0; i < count; i++) unscaled[i] = scaled[i] * (1f / lossScale);
                optimizer.Step(reference, unscaled, learningRate);

                double bc1 = 1 - Math.Pow(options.Beta1, step), bc2 = 1 - Math.Pow(options.Beta2, step);
                using var grads = DeviceBuffer.From(scaled, storage);
                SimtEmulator.Launch($"adamw_step_{storage.Suffix()}", Blocks, Threads, order,
                    master, grads, m, v, working, (long)count, (float)learningRate, (float)options.Beta1,
                    (float)(1 - options.Beta1), (float)options.Beta2, (float)(1 - options.Beta2), (float)options.Eps,
                    (float)options.WeightDecay, adamWMode ? 1 : 0, (float)(1 / bc1), (float)(1 / bc2), 1f / lossScale,
                    KernelArg.Null);

                Compare.Close(reference, master.ToFloats(), 1e-6f, $"master weights, {at}");
                Compare.Close(optimizer.State.ExpAvg, m.ToFloats(), 1e-6f, $"m, {at}");
                Compare.Close(optimizer.State.ExpAvgSq, v.ToFloats(), 1e-6f, $"v, {at}");
                Compare.Close(storage.Rounded(master.ToFloats()), working.ToFloats(), 0f, $"working copy, {at}");
            }
        }
    }

    /// <summary>
    /// adamw_step moves 4-element vectors only when every pointer allows it: buffers one or three elements off their
    /// vector boundary take the element-by-element path, and every result is bitwise that of the aligned buffers
    /// (the same arithmetic per element). Non-zero moments, a count that is not a multiple of 4 (the tail), and for
    /// fp32 also no working copy (params = null, as fp32 training launches it).
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AdamWOfUnalignedBuffersEqualsTheAlignedStep(StorageType storage, SchedulerOrder order)
    {
        const int count = 1003;
        var data = new TestData(54);
        float[] weights = data.NonZero(count), expAvg = data.NonZero(count, 0.01f);
        float[] expAvgSq = Array.ConvertAll(data.NonZero(count, 1e-4f), Math.Abs);
        float[] grads = storage.Rounded(data.NonZero(count, 1024f));

        // offsets: elements before master, grads, m, v, working; working null when withParams is false.
        float[][] Run(int[] offsets, bool withParams = true)
        {
            DeviceBuffer Padded(float[] values, int pad, StorageType type) => DeviceBuffer.From([.. new float[pad], .. values], type);
            using DeviceBuffer master = Padded(weights, offsets[0], StorageType.Float32), g = Padded(grads, offsets[1], storage);
            using DeviceBuffer m = Padded(expAvg, offsets[2], StorageType.Float32), v = Padded(expAvgSq, offsets[3], StorageType.Float32);
            using DeviceBuffer working = Padded(new float[count], offsets[4], storage);
            Assert.AreEqual(0, master.Pointer % 16, "the buffers start 16-byte aligned");
            nint At(DeviceBuffer buffer, int pad) => buffer.Pointer + pad * buffer.ElementBytes;
            KernelArg workingArg = withParams ? At(working, offsets[4]) : KernelArg.Null;
            SimtEmulator.Launch($"adamw_step_{storage.Suffix()}", Blocks, Threads, order,
                At(master, offsets[0]), At(g, offsets[1]), At(m, offsets[2]), At(v, offsets[3]), workingArg, (long)count,
                3e-3f, 0.9f, 0.1f, 0.95f, 0.05f, 1e-8f, 0.1f, 1, 10f, 20f, 1f / 1024, KernelArg.Null);
            return [master.ToFloats()[offsets[0]..], m.ToFloats()[offsets[2]..], v.ToFloats()[offsets[3]..],
                withParams ? working.ToFloats()[offsets[4]..] : storage.Rounded(master.ToFloats()[offsets[0]..])];
        }

        float[][] aligned = Run([0, 0, 0, 0, 0]);
        CollectionAssert.AreNotEqual(weights, aligned[0], "the step changed the weights");
        Compare.Close(storage.Rounded(aligned[0]), aligned[3], 0f, "working copy");
        string[] names = ["master", "m", "v", "working copy"];
        foreach (int[] offsets in new[] { new[] { 1, 1, 1, 1, 1 }, [0, 0, 0, 0, 1], [0, 3, 0, 0, 0], [0, 0, 2, 0, 0] })
        {
            float[][] shifted = Run(offsets);
            for (int i = 0; i < names.Length; i++)
                CollectionAssert.AreEqual(aligned[i], shifted[i], $"{names[i]}, offsets {string.Join(",", offsets)}");
        }

        if (storage == StorageType.Float32)
        {
            float[][] noParams = Run([0, 0, 0, 0, 0], withParams: false);
            for (int i = 0; i < names.Length; i++) CollectionAssert.AreEqual(aligned[i], noParams[i], $"{names[i]}, params null");
        }
    }

    [TestMethod]
    public void AdamWSkipsTheStepWhenAnOverflowWasFound()
    {
        float[] weights = new TestData(51).NonZero(100);
        using var master = DeviceBuffer.From(weights, StorageType.Float32);
        using var grads = DeviceBuffer.From(new TestData(52).NonZero(100), StorageType.Float16);
        using var m = DeviceBuffer.Zeroed(100, StorageType.Float32);
        using var v = DeviceBuffer.Zeroed(100, StorageType.Float32);
        using var working = DeviceBuffer.Zeroed(100, StorageType.Float16);
        using var foundInf = DeviceBuffer.FromInts([1]);
        SimtEmulator.Launch("adamw_step_f16", Blocks, Threads, SchedulerOrder.Forward, master, grads, m, v, working,
            100L, 1e-3f, 0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, 0.1f, 1, 10f, 1000f, 1f, foundInf);
        CollectionAssert.AreEqual(weights, master.ToFloats());
        CollectionAssert.AreEqual(new float[100], m.ToFloats());
        CollectionAssert.AreEqual(new float[100], working.ToFloats());
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void GlobalNormSquaredSumsEveryBufferDeterministically(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(53);
        const int partialCount = 5;
        foreach (int count in new[] { 1, 5, 64, 1000, 70001 })
        {
            float[] first = storage.Rounded(data.NonZero(count, 3f)), second = storage.Rounded(data.NonZero(97));
            double expected = GradientClipping.SumOfSquares(first) + GradientClipping.SumOfSquares(second);

            using var a = DeviceBuffer.From(first, storage);
            using var b = DeviceBuffer.From(second, storage);
            using var partials = DeviceBuffer.From(new float[] { 7, 7, 7, 7, 7 }, StorageType.Float32);
            using var total = DeviceBuffer.Zeroed(1, StorageType.Float32);
            string kernel = $"global_norm_squared_{storage.Suffix()}";
            SimtEmulator.Launch(kernel, partialCount, 128, order, a, (long)count, partials, 0);
            SimtEmulator.Launch(kernel, partialCount, 128, order, b, 97L, partials, 1);
            SimtEmulator.Launch("sum_f32", 1, 1024, order, partials, partialCount, total, 1f);
            Compare.Close((float)expected, total.ToFloats()[0], 1e-5f, $"count {count}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void OverflowCheckFlagsInfAndNaNAndUnscales(StorageType storage, SchedulerOrder order)
    {
        var data = new TestData(54);
        foreach (int count in new[] { 1, 64, 1000, 4101 })
        foreach (float poison in new[] { 0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN })
        foreach (float inverseScale in new[] { 1f, 1f / 512 })
        {
            string at = $"count {count}, poison {poison}, inverse scale {inverseScale}";
            float[] values = storage.Rounded(data.NonZero(count, 100f));
            if (poison != 0) values[data.Ints(1, count)[0]] = poison;
            bool cpuFlag = OverflowCheck.HasInfOrNaN(values);
            Assert.AreEqual(poison != 0, cpuFlag, at);
            var expected = new float[count];
            for (int i = 0; i < count; i++) expected[i] = values[i] * inverseScale;
            expected = storage.Rounded(expected);

            using var gradients = DeviceBuffer.From(values, storage);
            using var flag = DeviceBuffer.ZeroedInts(1);
            SimtEmulator.Launch($"overflow_check_unscale_{storage.Suffix()}", Blocks, Threads, order, gradients,
                (long)count, inverseScale, flag);
            Assert.AreEqual(cpuFlag ? 1 : 0, flag.ToInts()[0], $"flag, {at}");
            Compare.Close(expected, gradients.ToFloats(), 0f, $"gradients, {at}");
        }
    }
}
