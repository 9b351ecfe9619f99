using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;
using Shardwise.Training.Optim;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The checks every fused step with one fp32 state passes (lion.cu's momentum, adagrad.cu's sum of squares), against
/// the host step of Shardwise.Training's <see cref="AdamOptimizer"/>: several steps at counts off the block and the
/// 4-element vector, a loss scale folded into grad_scale; buffers off their 4-element boundary (the element path)
/// bitwise the aligned step; the step skipped when an overflow was found. The kernels share their argument order:
/// master, grads, state, working copy, count, the optimizer's own <paramref name="hyperparameters"/>, grad_scale, found_inf.
/// </summary>
/// <param name="kernel">The kernel's name without its storage suffix ("lion_step").</param>
/// <param name="stateIsSecondMoment">Whether the state is <see cref="AdamState.ExpAvgSq"/> (else ExpAvg); the other stays zero.</param>
/// <param name="hyperparameters">The arguments between count and grad_scale, for a learning rate.</param>
internal sealed class OneStateStepChecks(string kernel, AdamOptions options, string stateName, bool stateIsSecondMoment,
    Func<float, KernelArg[]> hyperparameters)
{
    private static readonly int[] Counts = [1, 5, 64, 1000, 4101];
    private const int Blocks = 3, Threads = 64;
    private const float LossScale = 1024f;

    public void StepsMatchTheCpuOptimizer(StorageType storage, SchedulerOrder order, int seed, double learningRate)
    {
        var data = new TestData(seed);
        foreach (int count in Counts)
        {
            float[] reference = data.NonZero(count);
            var optimizer = new AdamOptimizer(count, options);
            using var master = DeviceBuffer.From(reference, StorageType.Float32);
            using var state = DeviceBuffer.Zeroed(count, StorageType.Float32);
            using var working = DeviceBuffer.Zeroed(count, storage);
            for (int step = 1; step <= 4; step++)
            {
                string at = $"count {count}, step {step}";
                float[] scaled = storage.Rounded(data.NonZero(count, LossScale));
                var unscaled = new float[count];
                for (int i = 0; i < count; i++) unscaled[i] = scaled[i] * (1f / LossScale);
                optimizer.Step(reference, unscaled, learningRate);

                using var grads = DeviceBuffer.From(scaled, storage);
                Launch(storage, order, master, grads, state, working, count, (float)learningRate, 1f / LossScale, KernelArg.Null);

                Compare.Close(reference, master.ToFloats(), 1e-6f, $"master weights, {at}");
                Compare.Close(stateIsSecondMoment ? optimizer.State.ExpAvgSq : optimizer.State.ExpAvg, state.ToFloats(), 1e-6f, $"{stateName}, {at}");
                Compare.Close(storage.Rounded(master.ToFloats()), working.ToFloats(), 0f, $"working copy, {at}");
            }
            CollectionAssert.AreEqual(new float[count], stateIsSecondMoment ? optimizer.State.ExpAvg : optimizer.State.ExpAvgSq,
                $"the step keeps no {(stateIsSecondMoment ? "first" : "second")} moment");
        }
    }

    /// <summary>fp32 also without a working copy (params = null, as fp32 training launches it).</summary>
    /// <param name="initialState">Makes the state's starting values from random ones (a sum of squares is non-negative).</param>
    public void UnalignedBuffersEqualTheAlignedStep(StorageType storage, SchedulerOrder order, int seed, float learningRate, Func<float[], float[]> initialState)
    {
        const int count = 1003;
        var data = new TestData(seed);
        float[] weights = data.NonZero(count), start = initialState(data.NonZero(count, 0.01f));
        float[] grads = storage.Rounded(data.NonZero(count, LossScale));

        // offsets: elements before master, grads, state, working.
        float[][] Run(int[] offsets, bool withParams = true)
        {
            DeviceBuffer Padded(float[] values, int pad, StorageType type) => DeviceBuffer.From([.. new float[pad], .. values], type);
            using DeviceBuffer master = Padded(weights, offsets[0], StorageType.Float32), g = Padded(grads, offsets[1], storage);
            using DeviceBuffer state = Padded(start, offsets[2], StorageType.Float32), working = Padded(new float[count], offsets[3], storage);
            nint At(DeviceBuffer buffer, int pad) => buffer.Pointer + pad * buffer.ElementBytes;
            KernelArg workingArg = withParams ? At(working, offsets[3]) : KernelArg.Null;
            Launch(storage, order, At(master, offsets[0]), At(g, offsets[1]), At(state, offsets[2]), workingArg, count, learningRate, 1f / LossScale, KernelArg.Null);
            return [master.ToFloats()[offsets[0]..], state.ToFloats()[offsets[2]..],
                withParams ? working.ToFloats()[offsets[3]..] : storage.Rounded(master.ToFloats()[offsets[0]..])];
        }

        float[][] aligned = Run([0, 0, 0, 0]);
        CollectionAssert.AreNotEqual(weights, aligned[0], "the step changed the weights");
        string[] names = ["master", stateName, "working copy"];
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

    /// <summary>found_inf set: masters, state and working copy stay as they were.</summary>
    public void SkipsTheStepWhenAnOverflowWasFound(int seed, float learningRate)
    {
        float[] weights = new TestData(seed).NonZero(100);
        using var master = DeviceBuffer.From(weights, StorageType.Float32);
        using var grads = DeviceBuffer.From(new TestData(seed + 1).NonZero(100), StorageType.Float16);
        using var state = DeviceBuffer.Zeroed(100, StorageType.Float32);
        using var working = DeviceBuffer.Zeroed(100, StorageType.Float16);
        using var foundInf = DeviceBuffer.FromInts([1]);
        Launch(StorageType.Float16, SchedulerOrder.Forward, master, grads, state, working, 100, learningRate, 1f, foundInf);
        CollectionAssert.AreEqual(weights, master.ToFloats());
        CollectionAssert.AreEqual(new float[100], state.ToFloats());
        CollectionAssert.AreEqual(new float[100], working.ToFloats());
    }

    private void Launch(StorageType storage, SchedulerOrder order, KernelArg master, KernelArg grads, KernelArg state, KernelArg working,
        int count, float learningRate, float gradScale, KernelArg foundInf) =>
        SimtEmulator.Launch($"{kernel}_{storage.Suffix()}", Blocks, Threads, order,
            [master, grads, state, working, (long)count, .. hyperparameters(learningRate), gradScale, foundInf]);
}
