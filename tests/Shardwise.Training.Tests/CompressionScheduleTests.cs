using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Tests;

/// <summary>MoQ's bit schedule and mixing ratio, and the l1 masks' counts and ties.</summary>
[TestClass]
public sealed class CompressionScheduleTests
{
    private static WeightQuantizationConfig Quantization(long offset = 0, bool inForward = false, bool mixed = false) => new()
    {
        Enabled = true,
        ScheduleOffset = offset,
        InForward = inForward,
        MixedFp16 = mixed,
        ChangeRatio = 0.25,
        Groups = [new WeightQuantizationGroup(new CompressionModuleGroup("wq1", "$.g", ["*"], null), StartBits: 12, TargetBits: 8, QuantizationPeriod: 50)],
    };

    [TestMethod]
    public void BitsDropOnePerDoublingPeriod()
    {
        var schedule = new QuantizationSchedule(Quantization(offset: 10));
        // Call k = update − offset; DeepSpeed drops a bit when k reaches 50, then 100, 200, 400.
        (long Update, int Bits)[] expected = [(0, 12), (10, 12), (59, 12), (60, 11), (109, 11), (110, 10), (209, 10), (210, 9), (409, 9), (410, 8), (5000, 8)];
        foreach (var (update, bits) in expected)
        {
            schedule.AdvanceTo(update);
            Assert.AreEqual(bits, schedule.Bits(0), $"after {update} updates");
        }
        Assert.IsFalse(schedule.IsActive(10), "MoQ quantizes from the update after the offset");
        Assert.IsTrue(schedule.IsActive(11));
        var fresh = new QuantizationSchedule(Quantization(offset: 10));
        var switches = fresh.AdvanceTo(410);
        CollectionAssert.AreEqual(new[] { 11, 10, 9, 8 }, switches.Select(s => s.Bits).ToArray());
        CollectionAssert.AreEqual(new long[] { 50, 100, 200, 400 }, switches.Select(s => s.Call).ToArray());
        schedule.AdvanceTo(100);
        Assert.AreEqual(11, schedule.Bits(0), "going back recomputes from the start (a resumed run)");
    }

    [TestMethod]
    public void InForwardUsesTheTargetFromTheOffset()
    {
        var schedule = new QuantizationSchedule(Quantization(offset: 5, inForward: true));
        Assert.IsFalse(schedule.IsActive(4));
        Assert.IsTrue(schedule.IsActive(5));
        schedule.AdvanceTo(5);
        Assert.AreEqual(8, schedule.Bits(0));
        Assert.AreEqual(0, schedule.MixingRatio);
    }

    [TestMethod]
    public void MixingRatioFallsAndReturnsAtEachSwitch()
    {
        var schedule = new QuantizationSchedule(Quantization(mixed: true));
        double[] expected = [0.75, 0.5, 0.25, 0, 0];
        for (int call = 1; call <= expected.Length; call++)
        {
            schedule.AdvanceTo(call);
            Assert.AreEqual(expected[call - 1], schedule.MixingRatio, 1e-12, $"call {call}");
        }
        schedule.AdvanceTo(50);
        Assert.AreEqual(1.0, schedule.MixingRatio, "the bit switch at call 50 starts the blend again");
    }

    [TestMethod]
    public void MasksKeepTheCeilingOfTheLargestAndBreakTiesByPosition()
    {
        var weights = new[] { 0.1f, -0.5f, 0.3f, 0.3f, -0.05f, 0.2f, 0f };
        // ⌈0.5 · 7⌉ = 4 kept: −0.5, then the two 0.3 in order, then 0.2.
        CollectionAssert.AreEqual(new byte[] { 0, 1, 1, 1, 0, 1, 0 }, MagnitudeMask.ForWeights(weights, 0.5));
        // ⌈0.3 · 7⌉ = 3: the tie at 0.3 keeps both, −0.5 first.
        CollectionAssert.AreEqual(new byte[] { 0, 1, 1, 1, 0, 0, 0 }, MagnitudeMask.ForWeights(weights, 0.3));
        // Rows of 2: L1 norms 0.6, 0.6, 0.25, 0.0 (+ padding row); keep ⌈0.5·3⌉ = 2 of 3 rows of [3, 2].
        var rows = new[] { 0.1f, -0.5f, 0.3f, 0.3f, -0.05f, 0.2f };
        CollectionAssert.AreEqual(new byte[] { 1, 1, 0 }, MagnitudeMask.ForRows(rows, 3, 0.5));
        Assert.AreEqual(8, MagnitudeMask.Kept(100, 0.07), "math.ceil(0.07 * 100) is 8 in double arithmetic (7.000000000000001), as in DeepSpeed");
        Assert.AreEqual(3, MagnitudeMask.Kept(10, 0.3));
    }
}
