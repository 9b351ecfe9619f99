using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;

namespace Shardwise.Models.Tests;

/// <summary>
/// <c>[Checkpoint(InputsOnHost = true)]</c> (DeepSpeed's cpu_checkpointing) moves checkpointed inputs to host memory
/// between their last forward use and their layer's recompute, and changes nothing else: the programs compute bitwise
/// the loss and gradients of their twins without the attribute, their gradients agree with float64 finite differences,
/// and their device arena is smaller by the inputs no longer held through the step.
/// </summary>
[TestClass]
public sealed class HostCheckpointingTests
{
    private const int Batch = 2;

    [TestMethod]
    public void GptLossAndGradientsAreBitwiseTheTwinsInFloat32()
    {
        var plain = new TwoBlockGpt.Compiled<float>(new CpuOps<float>(), Batch);
        var onHost = new HostCheckpointedTwoBlockGpt.Compiled<float>(new CpuOps<float>(), Batch);
        RandomData.Parameters(plain, seed: 17);
        RandomData.Parameters(onHost, seed: 17);
        var random = new Random(13);
        // Two batches in a row: a restore that read the previous batch's stash, or a stash read back too late, differs.
        for (int run = 0; run < 2; run++)
        {
            var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
            var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
            plain.ZeroGradients();
            onHost.ZeroGradients();
            Assert.AreEqual(plain.Forward(ids, targets), onHost.Forward(ids, targets), $"run {run}: loss");
            plain.Backward(1f);
            onHost.Backward(1f);
            CollectionAssert.AreEqual(plain.Gradients.ToArray(), onHost.Gradients.ToArray(), $"run {run}: parameter gradients");
            Assert.IsTrue(plain.Gradients.ToArray().Any(g => g != 0), "the gradients must not be trivially zero");
        }
    }

    [TestMethod]
    public void MlpOutputAndGradientsAreBitwiseTheTwinsInFloat64()
    {
        var plain = new ResidualMlp.Compiled<double>(new CpuOps<double>(), Batch);
        var onHost = new HostCheckpointedResidualMlp.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(plain, seed: 5);
        RandomData.Parameters(onHost, seed: 5);
        var random = new Random(3);
        for (int run = 0; run < 2; run++)
        {
            var x = RandomData.Doubles(random, Batch * 16, scale: 2);
            var r = RandomData.Doubles(random, Batch * 16);
            plain.ZeroGradients();
            onHost.ZeroGradients();
            plain.Forward(x);
            onHost.Forward(x);
            plain.Backward(r);
            onHost.Backward(r);
            CollectionAssert.AreEqual(plain.Gradients.ToArray(), onHost.Gradients.ToArray(), $"run {run}: parameter gradients");
            var inputPlain = new double[x.Length];
            var inputOnHost = new double[x.Length];
            plain.Read(plain.GradientOf("x"), inputPlain);
            onHost.Read(onHost.GradientOf("x"), inputOnHost);
            CollectionAssert.AreEqual(inputPlain, inputOnHost, $"run {run}: input gradient");
        }
    }

    [TestMethod]
    public void GptGradientsMatchFiniteDifferences()
    {
        var random = new Random(13);
        var p = new HostCheckpointedTwoBlockGpt.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(p, seed: 17);
        var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => { p.Forward(ids, targets); p.Backward(1.0); }).Check();
        Console.WriteLine($"two-block GPT, inputs on the host: worst relative gradient error {worst:E2}");
    }

    /// <summary>
    /// ResidualMlp's blocks (see CheckpointingTests.ArenaMatchesTheHandComputedPeak): checkpointed, the peak is block
    /// 2's backward with x_0..x_3 live, 9 units of 16. With the inputs on the host, x_1 waits there until block 1's
    /// recompute, so the peak holds 8 units; x_2, block 2's input, is read by the last forward op and the first
    /// backward event (block 2's recompute), so it stays; x_0 is the program's input and x_3 its output. The host
    /// store is x_1 alone: 16 elements per sample.
    /// </summary>
    [TestMethod]
    public void ArenaAndHostStoreMatchTheHandComputedPlan()
    {
        Assert.AreEqual(9 * 16, CheckpointedResidualMlp.ActivationPlan.ArenaElementsPerSample);
        Assert.AreEqual(8 * 16, HostCheckpointedResidualMlp.ActivationPlan.ArenaElementsPerSample);
        Assert.AreEqual(16, HostCheckpointedResidualMlp.ActivationPlan.HostElementsPerSample);
        Assert.AreEqual(0, CheckpointedResidualMlp.ActivationPlan.HostElementsPerSample);
        StringAssert.Contains(HostCheckpointedResidualMlp.PlanReport, "activation checkpointing: blocks.0..2, fp32 arena 832 → 512 bytes per sample (6 forward ops recomputed)");
        StringAssert.Contains(HostCheckpointedResidualMlp.PlanReport, "checkpointed inputs in host memory: 1 tensor, 64 fp32 bytes per sample");
    }

    [TestMethod]
    public void GptDeviceArenaIsSmallerAndTheHostHoldsTheRest()
    {
        long checkpointed = CheckpointedTwoBlockGpt.ActivationPlan.ArenaElementsPerSample;
        long onDevice = HostCheckpointedTwoBlockGpt.ActivationPlan.ArenaElementsPerSample;
        long onHost = HostCheckpointedTwoBlockGpt.ActivationPlan.HostElementsPerSample;
        Console.WriteLine($"two-block GPT arena per sample: {checkpointed} checkpointed → {onDevice} with {onHost} on the host");
        Assert.IsTrue(onDevice < checkpointed, $"{onDevice} is not smaller than {checkpointed}");
        // Both blocks' inputs ([Context, Width] each) wait on the host: block 1's is read again only by its recompute,
        // and block 0's after it; the final LayerNorm, head and loss run between.
        Assert.AreEqual(2 * TwoBlockGpt.Context * TwoBlockGpt.Width, onHost);
    }
}
