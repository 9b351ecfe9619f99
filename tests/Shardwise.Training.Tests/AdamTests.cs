using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

[TestClass]
public sealed class AdamTests
{
    private const double RelativeTolerance = 1e-6;

    public static System.Collections.Generic.IEnumerable<object[]> Cases()
    {
        foreach (var adamW in new[] { true, false })
        {
            foreach (var steps in new[] { 1, 7 })
            {
                foreach (var length in new[] { 1, 15, 16, 17, 33, 1000, 1027 })
                {
                    yield return [adamW, steps, length];
                }
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void MatchesFloat64Reference(bool adamWMode, int steps, int length)
    {
        var options = new AdamOptions { Beta1 = 0.9, Beta2 = 0.999, Eps = 1e-8, WeightDecay = 0.01, AdamWMode = adamWMode };
        RunAgainstReference(options, steps, length, seed: (length * 31) + steps + (adamWMode ? 7 : 0), learningRate: step => 1e-3 * (1 + (0.1 * step)));
    }

    [TestMethod]
    public void MatchesReference_WithoutBiasCorrection_AndOtherHyperParameters()
    {
        var options = new AdamOptions { Beta1 = 0.8, Beta2 = 0.95, Eps = 1e-6, WeightDecay = 0.1, AdamWMode = false, BiasCorrection = false };
        RunAgainstReference(options, steps: 5, length: 259, seed: 5, learningRate: _ => 3e-4);
    }

    [TestMethod]
    public void AdamWAndL2_Differ()
    {
        var random = new Random(11);
        var p = RandomData.NonZero(random, 64, 0.5, 2);
        var g = RandomData.NonZero(random, 64, 0.1, 1);
        var decoupled = (float[])p.Clone();
        var l2 = (float[])p.Clone();
        new AdamOptimizer(64, new AdamOptions { WeightDecay = 0.1, AdamWMode = true }).Step(decoupled, g, 1e-2);
        new AdamOptimizer(64, new AdamOptions { WeightDecay = 0.1, AdamWMode = false }).Step(l2, g, 1e-2);
        Assert.IsTrue(decoupled.Zip(l2).Any(pair => Math.Abs(pair.First - pair.Second) > 1e-4), "weight-decay mode must change the update");
    }

    [TestMethod]
    public void FirstStep_MovesEachParameterByAboutLrTowardsMinusGradient()
    {
        // With bias correction, step 1 gives m̂/√v̂ = g/|g|: every parameter moves by ≈ lr against its gradient.
        var p = new float[] { 1f, -2f, 0.5f };
        var g = new float[] { 0.3f, -4f, 1e-3f };
        new AdamOptimizer(3, new AdamOptions()).Step(p, g, 0.01);
        Assert.AreEqual(0.99, p[0], 1e-6);
        Assert.AreEqual(-1.99, p[1], 1e-6);
        Assert.AreEqual(0.49, p[2], 1e-5);
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(8)]
    [DataRow(9)]
    [DataRow(16)]
    [DataRow(17)]
    [DataRow(31)]
    [DataRow(32)]
    [DataRow(33)]
    [DataRow(100)]
    public void VectorWidthsAndScalarTail_AreBitIdentical(int length)
    {
        float[] Run(SimdWidth width, out AdamState state)
        {
            var random = new Random(length);
            var p = RandomData.NonZero(random, length, 0.5, 2);
            var optimizer = new AdamOptimizer(length, new AdamOptions { WeightDecay = 0.05 });
            for (var step = 0; step < 3; step++)
            {
                optimizer.Step(p, RandomData.NonZero(random, length, 0.01, 1), 1e-3, width);
            }

            state = optimizer.State;
            return p;
        }

        var scalar = Run(SimdWidth.Scalar, out var scalarState);
        foreach (var width in new[] { SimdWidth.Vector256, SimdWidth.Vector512, SimdWidth.Auto })
        {
            var vector = Run(width, out var vectorState);
            CollectionAssert.AreEqual(scalar, vector, $"parameters differ for {width}");
            CollectionAssert.AreEqual(scalarState.ExpAvg, vectorState.ExpAvg, $"exp_avg differs for {width}");
            CollectionAssert.AreEqual(scalarState.ExpAvgSq, vectorState.ExpAvgSq, $"exp_avg_sq differs for {width}");
        }
    }

    [TestMethod]
    public void ResumingFromState_ContinuesExactly()
    {
        var random = new Random(3);
        var p = RandomData.NonZero(random, 50, 0.5, 2);
        var grads = Enumerable.Range(0, 4).Select(_ => RandomData.NonZero(random, 50, 0.1, 1)).ToArray();
        var options = new AdamOptions { WeightDecay = 0.01 };

        var straight = (float[])p.Clone();
        var optimizer = new AdamOptimizer(50, options);
        foreach (var g in grads)
        {
            optimizer.Step(straight, g, 1e-3);
        }

        var resumed = (float[])p.Clone();
        var first = new AdamOptimizer(50, options);
        first.Step(resumed, grads[0], 1e-3);
        first.Step(resumed, grads[1], 1e-3);
        var checkpoint = new AdamState(first.State.Step, (float[])first.State.ExpAvg.Clone(), (float[])first.State.ExpAvgSq.Clone());
        var second = new AdamOptimizer(options, checkpoint);
        second.Step(resumed, grads[2], 1e-3);
        second.Step(resumed, grads[3], 1e-3);

        CollectionAssert.AreEqual(straight, resumed);
        Assert.AreEqual(4, second.State.Step);
    }

    [TestMethod]
    public void LengthMismatch_Throws()
    {
        var optimizer = new AdamOptimizer(4, new AdamOptions());
        Assert.ThrowsExactly<ArgumentException>(() => optimizer.Step(new float[4], new float[3], 1e-3));
    }

    [TestMethod]
    public void OptionsFromConfig_FollowDeepSpeedAdamWModeRules()
    {
        static OptimizerConfig Optimizer(string section) =>
            DeepSpeedConfig.Parse("{\"train_batch_size\": 8, \"optimizer\": " + section + "}").Config.Optimizer!;

        Assert.IsTrue(Optimizer("""{"type": "Adam", "params": {"lr": 1e-3}}""").AdamWMode, "DeepSpeed's Adam defaults to adam_w_mode=true");
        Assert.IsFalse(Optimizer("""{"type": "Adam", "params": {"adam_w_mode": false}}""").AdamWMode);
        Assert.IsTrue(Optimizer("""{"type": "adamw", "params": {}}""").AdamWMode);

        var result = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"adam_w_mode": false}}}""");
        Assert.IsTrue(result.Config.Optimizer!.AdamWMode, "type AdamW forces decoupled decay");
        Assert.IsTrue(result.Warnings.Any(w => w.StartsWith("$.optimizer.params.adam_w_mode:", StringComparison.Ordinal)));

        var options = AdamOptions.FromConfig(Optimizer("""{"type": "Adam", "params": {"betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1, "bias_correction": false}}"""));
        Assert.AreEqual(new AdamOptions { Beta1 = 0.8, Beta2 = 0.95, Eps = 1e-6, WeightDecay = 0.1, AdamWMode = true, BiasCorrection = false }, options);
    }

    /// <summary>
    /// OneCycle's cyclic momentum: every step runs with the schedule's (β1, β2), bias corrections included, against the
    /// float64 reference given the same betas; and the betas do change the update.
    /// </summary>
    [TestMethod]
    public void PerStepBetasFromOneCycle_MatchTheReference()
    {
        var cycle = new OneCycle(new OneCycleConfig { CycleMinLr = 1e-3, CycleMaxLr = 1e-2, CycleFirstStepSize = 3, CycleSecondStepSize = 2 });
        var options = new AdamOptions { Beta1 = 0.9, Beta2 = 0.999, Eps = 1e-8, WeightDecay = 0.01, AdamWMode = true };
        RunAgainstReference(options, steps: 8, length: 257, seed: 11, learningRate: step => cycle.LearningRate(step), betas: step => cycle.Betas(step));

        var random = new Random(3);
        float[] start = RandomData.NonZero(random, 64, 0.5, 2), g = RandomData.NonZero(random, 64, 0.01, 1);
        float[] own = (float[])start.Clone(), cycled = (float[])start.Clone();
        var ownOptimizer = new AdamOptimizer(64, options);
        var cycledOptimizer = new AdamOptimizer(64, options);
        // A first step moves each weight by about lr whatever the betas (m̂ = g, v̂ = g²): the second one tells.
        ownOptimizer.Step(own, g, 1e-3);
        cycledOptimizer.Step(cycled, g, 1e-3);
        float[] g2 = RandomData.NonZero(random, 64, 0.01, 1);
        ownOptimizer.Step(own, g2, 1e-3);
        cycledOptimizer.Step(cycled, g2, 1e-3, cycle.Betas(1));
        CollectionAssert.AreNotEqual(own, cycled, "β1 0.88 and β2 0.99 (OneCycle's step 1) move the weights differently from 0.9 and 0.999");
    }

    private static void RunAgainstReference(AdamOptions options, int steps, int length, int seed, Func<int, double> learningRate,
        Func<int, (double Beta1, double Beta2)?>? betas = null)
    {
        var random = new Random(seed);
        var p = RandomData.NonZero(random, length, 0.5, 2);
        var pRef = RandomData.ToDouble(p);
        var optimizer = new AdamOptimizer(length, options);
        var reference = new AdamReference(length, options.Beta1, options.Beta2, options.Eps, options.WeightDecay, options.AdamWMode, options.BiasCorrection);
        for (var step = 0; step < steps; step++)
        {
            var g = RandomData.NonZero(random, length, 0.01, 1);
            optimizer.Step(p, g, learningRate(step), betas?.Invoke(step));
            reference.Step(pRef, RandomData.ToDouble(g), learningRate(step), betas?.Invoke(step));
        }

        Assert.AreEqual(steps, optimizer.State.Step);
        for (var i = 0; i < length; i++)
        {
            AssertRelative(pRef[i], p[i], $"param[{i}]");
        }

        // Moments of random-sign gradients cancel to near zero across steps, where float rounding of the
        // earlier, larger terms dominates: they are compared relative to the buffer's largest magnitude.
        AssertRelativeToScale(reference.M, optimizer.State.ExpAvg, "exp_avg");
        AssertRelativeToScale(reference.V, optimizer.State.ExpAvgSq, "exp_avg_sq");
    }

    private static void AssertRelative(double expected, float actual, string what)
    {
        var error = Math.Abs(actual - expected) / Math.Abs(expected);
        Assert.IsTrue(error < RelativeTolerance, $"{what}: {actual} vs {expected} (relative error {error:E2})");
    }

    private static void AssertRelativeToScale(double[] expected, float[] actual, string what)
    {
        var scale = expected.Max(Math.Abs);
        for (var i = 0; i < expected.Length; i++)
        {
            var error = Math.Abs(actual[i] - expected[i]) / scale;
            Assert.IsTrue(error < RelativeTolerance, $"{what}[{i}]: {actual[i]} vs {expected[i]} (error {error:E2})");
        }
    }
}
