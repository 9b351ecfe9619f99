using System;
using System.Numerics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// [Checkpoint] changes the memory plan and nothing else: the checkpointed programs compute bitwise the same loss and
/// gradients as their twins without the attribute, their gradients agree with float64 finite differences, and their
/// activation arena is smaller by exactly what dropping the blocks' internal activations saves.
/// </summary>
[TestClass]
public sealed class CheckpointingTests
{
    private const int Batch = 2;

    [TestMethod]
    public void GptLossAndGradientsAreBitwiseEqualInFloat32() => GptTwinsAgree<float>();

    [TestMethod]
    public void GptLossAndGradientsAreBitwiseEqualInFloat64() => GptTwinsAgree<double>();

    [TestMethod]
    public void MlpGradientsAreBitwiseEqualInFloat32() => MlpTwinsAgree<float>();

    [TestMethod]
    public void MlpGradientsAreBitwiseEqualInFloat64() => MlpTwinsAgree<double>();

    private static void GptTwinsAgree<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var plain = new TwoBlockGpt.Compiled<T>(new CpuOps<T>(), Batch);
        var checkpointed = new CheckpointedTwoBlockGpt.Compiled<T>(new CpuOps<T>(), Batch);
        CollectionAssert.AreEqual(Names(plain.Layout), Names(checkpointed.Layout), "the twins must share one parameter layout");
        RandomData.Parameters(plain, seed: 17);
        RandomData.Parameters(checkpointed, seed: 17);

        var random = new Random(13);
        // Two different batches in a row: the second run would expose a recompute that read a stale buffer.
        for (int run = 0; run < 2; run++)
        {
            var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
            var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
            plain.ZeroGradients();
            checkpointed.ZeroGradients();
            T lossPlain = plain.Forward(ids, targets);
            T lossCheckpointed = checkpointed.Forward(ids, targets);
            plain.Backward(T.One);
            checkpointed.Backward(T.One);

            Assert.AreEqual(lossPlain, lossCheckpointed, $"run {run}: loss");
            AssertBitwiseEqual(plain.Gradients.ToArray(), checkpointed.Gradients.ToArray(), $"run {run}: parameter gradients");
            Assert.IsTrue(Norm(plain.Gradients.ToArray()) > 0, "the gradients must not be trivially zero");
        }
    }

    private static void MlpTwinsAgree<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var plain = new ResidualMlp.Compiled<T>(new CpuOps<T>(), Batch);
        var checkpointed = new CheckpointedResidualMlp.Compiled<T>(new CpuOps<T>(), Batch);
        RandomData.Parameters(plain, seed: 5);
        RandomData.Parameters(checkpointed, seed: 5);

        var random = new Random(3);
        for (int run = 0; run < 2; run++)
        {
            var x = Cast<T>(RandomData.Doubles(random, Batch * 16, scale: 2));
            var r = Cast<T>(RandomData.Doubles(random, Batch * 16));
            plain.ZeroGradients();
            checkpointed.ZeroGradients();
            plain.Forward(x);
            checkpointed.Forward(x);
            var outputPlain = new T[x.Length];
            var outputCheckpointed = new T[x.Length];
            plain.Read(plain.Output, outputPlain);
            checkpointed.Read(checkpointed.Output, outputCheckpointed);
            plain.Backward(r);
            checkpointed.Backward(r);

            AssertBitwiseEqual(outputPlain, outputCheckpointed, $"run {run}: output");
            AssertBitwiseEqual(plain.Gradients.ToArray(), checkpointed.Gradients.ToArray(), $"run {run}: parameter gradients");
            var inputPlain = new T[x.Length];
            var inputCheckpointed = new T[x.Length];
            plain.Read(plain.GradientOf("x"), inputPlain);
            checkpointed.Read(checkpointed.GradientOf("x"), inputCheckpointed);
            AssertBitwiseEqual(inputPlain, inputCheckpointed, $"run {run}: input gradient");
        }
    }

    [TestMethod]
    public void CheckpointedGptGradientsMatchFiniteDifferences()
    {
        var random = new Random(13);
        var p = new CheckpointedTwoBlockGpt.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(p, seed: 17);
        var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => { p.Forward(ids, targets); p.Backward(1.0); }).Check();
        Console.WriteLine($"checkpointed two-block GPT: worst relative gradient error {worst:E2}");
    }

    [TestMethod]
    public void CheckpointedMlpGradientsMatchFiniteDifferences()
    {
        var random = new Random(7);
        var p = new CheckpointedResidualMlp.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(p, seed: 11);
        var x = RandomData.Doubles(random, Batch * 16, scale: 2);
        var r = RandomData.Doubles(random, Batch * 16);
        var y = new double[r.Length];
        double Objective()
        {
            p.Forward(x);
            p.Read(p.Output, y);
            return RandomData.Dot(y, r);
        }
        new GradientChecker(p, Objective, () => { p.Forward(x); p.Backward(r); }).WithInput("x", x, p.GradientOf("x")).Check();
    }

    /// <summary>
    /// Every ResidualMlp activation is 16 elements (one alignment unit), and buffers of equal size placed in order of
    /// their first use pack to the largest number live at once. Per block b (ops 4b..4b+3): u = up(x_b), g = gelu(u),
    /// d = down(g), x_{b+1} = x_b + d; the program's output x_3 and the input x_0 stay to the end.
    /// Without checkpointing the peak is the first backward step (the residual add of block 2): the values every
    /// backward still reads — x_0, x_1, x_2, x_3, u_0..u_2, g_0..g_2 — plus d(x_3), d(x_2) and d(d_2): 13 units.
    /// With checkpointing, forward keeps only x_0..x_3, u and g exist for one block at a time (recomputed: up and
    /// gelu, not down, whose output nothing in backward reads), and the peak is block 2's add and down backward:
    /// x_0..x_3, u_2, g_2, d(x_2), d(d_2) and d(x_3) or d(g_2): 9 units.
    /// </summary>
    [TestMethod]
    public void ArenaMatchesTheHandComputedPeak()
    {
        Assert.AreEqual(13 * 16, ResidualMlp.ActivationPlan.ArenaElementsPerSample);
        Assert.AreEqual(9 * 16, CheckpointedResidualMlp.ActivationPlan.ArenaElementsPerSample);
        StringAssert.Contains(CheckpointedResidualMlp.PlanReport,
            "activation checkpointing: blocks.0..2, fp32 arena 832 → 576 bytes per sample (6 forward ops recomputed)");
        Assert.IsFalse(ResidualMlp.PlanReport.Contains("activation checkpointing"), "no [Checkpoint], no line");
    }

    [TestMethod]
    public void CheckpointedGptArenaIsStrictlySmaller()
    {
        long plain = TwoBlockGpt.ActivationPlan.ArenaElementsPerSample;
        long checkpointed = CheckpointedTwoBlockGpt.ActivationPlan.ArenaElementsPerSample;
        Console.WriteLine($"two-block GPT arena per sample: {plain} → {checkpointed} elements");
        Assert.IsTrue(checkpointed < plain, $"checkpointed arena {checkpointed} is not smaller than {plain}");
        StringAssert.Contains(CheckpointedTwoBlockGpt.PlanReport,
            $"activation checkpointing: blocks.0..1, fp32 arena {4 * plain:N0} → {4 * checkpointed:N0} bytes per sample");
    }

    private static string[] Names(ParameterLayout layout) => Array.ConvertAll(System.Linq.Enumerable.ToArray(layout.Slots), s => s.Name);

    private static T[] Cast<T>(double[] values) where T : unmanaged, IFloatingPointIeee754<T>
        => Array.ConvertAll(values, v => T.CreateChecked(v));

    private static double Norm<T>(T[] values) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double sum = 0;
        foreach (var v in values) sum += double.CreateChecked(v * v);
        return Math.Sqrt(sum);
    }

    private static void AssertBitwiseEqual<T>(T[] expected, T[] actual, string what) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Assert.AreEqual(expected.Length, actual.Length, what + ": length");
        for (int i = 0; i < expected.Length; i++)
        {
            if (!expected[i].Equals(actual[i]))
                Assert.Fail($"{what}: element {i} differs: {expected[i]} vs {actual[i]}");
        }
    }
}
