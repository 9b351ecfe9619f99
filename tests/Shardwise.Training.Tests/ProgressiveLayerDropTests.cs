using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Cli;
using Shardwise.Training.Config;
using Shardwise.Training.LayerDrop;

namespace Shardwise.Training.Tests;

/// <summary>
/// The progressive layer drop schedule: DeepSpeed's θ(t) as the forward sees it, the per-depth keep probabilities, the
/// draws' frequencies and their independence from anything but (seed, step, micro-batch, layer).
/// </summary>
[TestClass]
public sealed class ProgressiveLayerDropTests
{
    private static readonly string[] Blocks = ["blocks.0", "blocks.1", "blocks.2", "blocks.3"];

    private static ProgressiveLayerDrop Drop(double theta, double gamma, ulong seed = 7) =>
        new(new ProgressiveLayerDropConfig { Enabled = true, Theta = theta, Gamma = gamma }, Blocks, seed);

    [TestMethod]
    public void ThetaFollowsDeepSpeedsScheduleOneStepBehind()
    {
        // DeepSpeed's tests/unit/runtime/test_pld.py: after step i (from 0), get_pld_theta() = (1 − θ̄)·e^(−γi) + θ̄,
        // which is what the forward of step i + 1 is handed; the first step runs with 1.
        const double theta = 0.5, gamma = 0.001;
        var drop = Drop(theta, gamma);
        Assert.AreEqual(1.0, drop.Theta(0));
        for (int i = 0; i < 50; i++)
            Assert.AreEqual((1 - theta) * Math.Exp(-gamma * i) + theta, drop.Theta(i + 1), 1e-15, $"after step {i}");
        Assert.AreEqual(theta, drop.Theta(1_000_000), 1e-12, "decays to theta");
    }

    [TestMethod]
    public void DeeperLayersAreKeptLessOftenAndScaledByTheInverse()
    {
        var drop = Drop(0.5, 0.001);
        CollectionAssert.AreEqual(new[] { 0.875, 0.75, 0.625, 0.5 }, new[] { 0, 1, 2, 3 }.Select(i => drop.KeepProbability(i, 0.5)).ToArray());
        var keep = drop.Sample(completedSteps: 10_000_000, microBatch: 0);
        for (int i = 0; i < 4; i++) Assert.AreEqual(1 / drop.KeepProbability(i, 0.5), keep.Scale(i), 1e-12);

        // theta 1: nothing is ever dropped, and nothing scaled.
        var never = Drop(1.0, 0.5);
        for (int step = 0; step < 200; step++)
        {
            var k = never.Sample(step, 0);
            Assert.AreEqual(0, k.Skipped);
            for (int i = 0; i < 4; i++) Assert.AreEqual(1.0, k.Scale(i));
        }
    }

    [TestMethod]
    public void DrawsKeepEachLayerAtItsProbability()
    {
        // Late in a run θ = 0.5: 20,000 micro-batches, each frequency within 4 standard deviations of p_i.
        var drop = Drop(0.5, 0.1);
        const int draws = 20_000;
        var kept = new int[4];
        for (int n = 0; n < draws; n++)
        {
            var keep = drop.Sample(1000 + n / 4, n % 4);
            for (int i = 0; i < 4; i++) kept[i] += keep.Kept(i) ? 1 : 0;
        }
        for (int i = 0; i < 4; i++)
        {
            double p = drop.KeepProbability(i, drop.Theta(1000)), sigma = Math.Sqrt(p * (1 - p) / draws);
            Assert.AreEqual(p, kept[i] / (double)draws, 4 * sigma, $"layer {i}");
        }
    }

    [TestMethod]
    public void AMicroBatchDrawsTheSameLayersEverywhereAndOnlyItsOwn()
    {
        // Every rank and stage, the forward and the backward, a resumed run: the same (seed, step, micro-batch), the same layers.
        var a = Drop(0.5, 0.1, seed: 11);
        var b = Drop(0.5, 0.1, seed: 11);
        int differentMicro = 0, differentSeed = 0;
        var other = Drop(0.5, 0.1, seed: 12);
        for (int step = 100; step < 300; step++)
        {
            var first = a.Sample(step, 1);
            var again = b.Sample(step, 1);
            for (int i = 0; i < 4; i++) Assert.AreEqual(first.Kept(i), again.Kept(i));
            differentMicro += Differs(first, a.Sample(step, 2)) ? 1 : 0;
            differentSeed += Differs(first, other.Sample(step, 1)) ? 1 : 0;
        }
        Assert.IsTrue(differentMicro > 50, $"micro-batches draw apart ({differentMicro} of 200 differ)");
        Assert.IsTrue(differentSeed > 50, $"seeds draw apart ({differentSeed} of 200 differ)");
    }

    [TestMethod]
    public void AModelWithoutDroppableLayersIsAClearError()
    {
        var config = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "progressive_layer_drop": {"enabled": true, "theta": 0.5}}""", "pld.json").Config;
        var error = Assert.ThrowsExactly<CliException>(() => ProgressiveLayerDrop.For(config, Array.Empty<string>(), "MlpNet", seed: 1));
        StringAssert.Contains(error.Message, "pld.json: $.progressive_layer_drop.enabled is true, but MlpNet has no layer it may skip");
        StringAssert.Contains(error.Message, "[LayerDrop]");
        Assert.IsNull(ProgressiveLayerDrop.For(DeepSpeedConfig.Parse("""{"train_batch_size": 8}""", "x.json").Config, Blocks, "TinyGpt", 1));
    }

    [TestMethod]
    public void ThePlanTellsWhatShareOfTheStepRemains()
    {
        // blocks.0 (300 FLOPs) kept with 0.75, blocks.1 (100) with 0.5; the embedding and "blocks.10" (not inside blocks.1) always run.
        var drop = new ProgressiveLayerDrop(new ProgressiveLayerDropConfig { Enabled = true, Theta = 0.5, Gamma = 0.1 }, ["blocks.0", "blocks.1"], 1);
        Shardwise.Plans.OperationCost[] costs =
        [
            new("tokens", "Embedding", 10, 10), new("blocks.0.attention", "Linear", 100, 200), new("blocks.1", "Add", 50, 50),
            new("blocks.10.up", "Linear", 1000, 0),
        ];
        Assert.AreEqual("progressive layer drop: θ is within 0.01 of 0.5 after about 41 steps; then the [LayerDrop] layers run 62.5% of their " +
            "passes, and as they are 28.2% of a step's FLOPs, a step does about 91.2% of the full step's (a skipped layer still runs its fused " +
            "residual LayerNorms and zero fills)", drop.DescribeExpectedWork(costs));
    }

    [TestMethod]
    public void TheProfiledStepCountsTheBlocksItRan()
    {
        // Two micro-batches: blocks.0 ran in both, blocks.1 in one; ops outside the blocks (and "blocks.10") count whole.
        var drop = new ProgressiveLayerDrop(new ProgressiveLayerDropConfig { Enabled = true, Theta = 0.5, Gamma = 0.1 }, ["blocks.0", "blocks.1"], 1);
        Shardwise.Plans.OperationCost[] costs =
        [
            new("tokens", "Embedding", 10, 10), new("blocks.0.attention", "Linear", 100, 200), new("blocks.1", "Add", 50, 51),
            new("blocks.10.up", "Linear", 1000, 0),
        ];
        var executed = drop.ExecutedCosts(costs, [new([true, false], [1.25, 2.0]), new([true, true], [1.25, 2.0])]);
        CollectionAssert.AreEqual(new long[] { 10, 100, 25, 1000 }, executed.Select(c => c.ForwardFlopsPerSample).ToArray());
        CollectionAssert.AreEqual(new long[] { 10, 200, 26, 0 }, executed.Select(c => c.BackwardFlopsPerSample).ToArray());
        Assert.AreSame(costs, drop.ExecutedCosts(costs, []), "no micro-batches drawn: the static costs");
    }

    private static bool Differs(Shardwise.Plans.LayerKeep a, Shardwise.Plans.LayerKeep b)
    {
        for (int i = 0; i < a.Count; i++)
            if (a.Kept(i) != b.Kept(i)) return true;
        return false;
    }
}
