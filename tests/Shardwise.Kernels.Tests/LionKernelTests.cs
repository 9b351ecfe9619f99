using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;
using Shardwise.Training.Optim;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// lion.cu against Shardwise.Training's Lion (AdamOptimizer with <see cref="AdamOptions.Lion"/>, the host step's
/// LionKernel): every storage type, counts off the block and the 4-element vector, several steps, weight decay,
/// a loss scale folded into grad_scale; the vector path against the element path; sign(0) = 0; the skipped step
/// (<see cref="OneStateStepChecks"/>, shared with Adagrad).
/// </summary>
[TestClass]
public sealed class LionKernelTests
{
    private static readonly AdamOptions Lion = new() { Lion = true, Beta1 = 0.9, Beta2 = 0.99, WeightDecay = 0.1, BiasCorrection = false };

    private static readonly OneStateStepChecks Checks = new("lion_step", Lion, "momentum", stateIsSecondMoment: false,
        learningRate => [learningRate, (float)Lion.Beta1, (float)(1 - Lion.Beta1), (float)Lion.Beta2, (float)(1 - Lion.Beta2), (float)Lion.WeightDecay]);

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void LionStepsMatchTheCpuOptimizer(StorageType storage, SchedulerOrder order) => Checks.StepsMatchTheCpuOptimizer(storage, order, seed: 60, learningRate: 1e-3);

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void LionOfUnalignedBuffersEqualsTheAlignedStep(StorageType storage, SchedulerOrder order) =>
        Checks.UnalignedBuffersEqualTheAlignedStep(storage, order, seed: 61, learningRate: 3e-3f, momentum => momentum);

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
    public void LionSkipsTheStepWhenAnOverflowWasFound() => Checks.SkipsTheStepWhenAnOverflowWasFound(seed: 63, learningRate: 1e-3f);
}
