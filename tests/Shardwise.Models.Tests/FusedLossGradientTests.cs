using System;
using System.Numerics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// ForwardBackward, where the generated forward's cross-entropy also writes the logits' gradient
/// (LossGradientFusionPlanner, ITensorOps.CrossEntropyWithGradient), is Forward then Backward: bitwise the same loss
/// and parameter gradients, with and without checkpointing, accumulating over micro-batches; its gradients agree with
/// float64 finite differences; and it leaves no state behind that changes a later plain Forward and Backward, even
/// when its forward throws. (That it calls the fused op instead of the pair: FusedLossTrainingTests.)
/// </summary>
[TestClass]
public sealed class FusedLossGradientTests
{
    private const int Batch = 2;

    [TestMethod]
    public void SameLossAndGradientsAsForwardThenBackwardInFloat32()
    {
        Agree<float>(b => new TwoBlockGpt.Compiled<float>(new CpuOps<float>(), b));
        Agree<float>(b => new CheckpointedTwoBlockGpt.Compiled<float>(new CpuOps<float>(), b));
    }

    [TestMethod]
    public void SameLossAndGradientsAsForwardThenBackwardInFloat64()
    {
        Agree<double>(b => new TwoBlockGpt.Compiled<double>(new CpuOps<double>(), b));
        Agree<double>(b => new CheckpointedTwoBlockGpt.Compiled<double>(new CpuOps<double>(), b));
    }

    private static void Agree<T>(Func<int, CompiledLanguageModel<T>> compile) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var separate = compile(Batch);
        var fused = compile(Batch);
        RandomData.Parameters(separate, seed: 31);
        RandomData.Parameters(fused, seed: 31);
        separate.ZeroGradients();
        fused.ZeroGradients();
        var random = new Random(5);
        T scale = T.CreateChecked(0.375);
        // Three micro-batches accumulated: the loss op's gradient must be rewritten each time, not added.
        for (int micro = 0; micro < 3; micro++)
        {
            var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
            var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
            T expected = separate.Forward(ids, targets);
            separate.Backward(scale);
            T loss = fused.ForwardBackward(ids, targets, scale);
            Assert.AreEqual(expected, loss, $"{separate.GetType().Name}, micro-batch {micro}: loss");
            CollectionAssert.AreEqual(separate.Gradients.ToArray(), fused.Gradients.ToArray(),
                $"{separate.GetType().Name}, micro-batch {micro}: parameter gradients");
        }
        Assert.AreNotEqual(T.Zero, separate.Gradients.ToArray()[0] + separate.Gradients.ToArray()[^1], "gradients were written");
    }

    [TestMethod]
    public void GradientsMatchFiniteDifferences()
    {
        var random = new Random(19);
        var p = new TwoBlockGpt.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(p, seed: 23);
        var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => p.ForwardBackward(ids, targets, 1.0)).Check();
        Console.WriteLine($"two-block GPT through ForwardBackward: worst relative gradient error {worst:E2}");
    }

    [TestMethod]
    public void AForwardThatThrowsLeavesTheNextBackwardWhole()
    {
        var reference = new TwoBlockGpt.Compiled<float>(new CpuOps<float>(), Batch);
        var program = new TwoBlockGpt.Compiled<float>(new CpuOps<float>(), Batch);
        RandomData.Parameters(reference, seed: 8);
        RandomData.Parameters(program, seed: 8);
        var random = new Random(9);
        var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        var bad = (int[])targets.Clone();
        bad[^1] = TwoBlockGpt.Vocabulary; // outside the vocabulary: the loss op throws

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => program.ForwardBackward(ids, bad, 1f));

        program.ZeroGradients();
        reference.ZeroGradients();
        Assert.AreEqual(reference.Forward(ids, targets), program.Forward(ids, targets));
        reference.Backward(1f);
        program.Backward(1f);
        CollectionAssert.AreEqual(reference.Gradients.ToArray(), program.Gradients.ToArray(),
            "after the failed ForwardBackward, Backward still computes the loss's gradient");
    }
}
