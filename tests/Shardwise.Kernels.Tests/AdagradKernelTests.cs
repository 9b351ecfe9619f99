using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Precision;
using Shardwise.Training.Optim;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// adagrad.cu against Shardwise.Training's Adagrad (AdamOptimizer with <see cref="AdamOptions.Adagrad"/>, the host
/// step's AdagradKernel): every storage type, counts off the block and the 4-element vector, several steps, L2 weight
/// decay, a loss scale folded into grad_scale; the vector path against the element path; the skipped step
/// (<see cref="OneStateStepChecks"/>, shared with Lion).
/// </summary>
[TestClass]
public sealed class AdagradKernelTests
{
    private static readonly AdamOptions Adagrad = new() { Adagrad = true, Eps = 1e-10, WeightDecay = 0.1, BiasCorrection = false };

    private static readonly OneStateStepChecks Checks = new("adagrad_step", Adagrad, "sum of squares", stateIsSecondMoment: true,
        learningRate => [learningRate, (float)Adagrad.Eps, (float)Adagrad.WeightDecay]);

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AdagradStepsMatchTheCpuOptimizer(StorageType storage, SchedulerOrder order) => Checks.StepsMatchTheCpuOptimizer(storage, order, seed: 70, learningRate: 1e-2);

    [TestMethod]
    [DynamicData(nameof(Cases.StoragesAndOrders), typeof(Cases))]
    public void AdagradOfUnalignedBuffersEqualsTheAlignedStep(StorageType storage, SchedulerOrder order) =>
        Checks.UnalignedBuffersEqualTheAlignedStep(storage, order, seed: 71, learningRate: 1e-2f, sums => Array.ConvertAll(sums, Math.Abs));

    [TestMethod]
    public void AdagradSkipsTheStepWhenAnOverflowWasFound() => Checks.SkipsTheStepWhenAnOverflowWasFound(seed: 72, learningRate: 1e-2f);
}
