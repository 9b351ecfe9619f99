using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Precision;

namespace Shardwise.Training.Tests;

/// <summary>
/// Expected sequences were written by hand-simulating DeepSpeed's update_scale (quoted on DynamicLossScaler);
/// each list is the scale after each update. 'T' = overflow, '.' = clean step.
/// </summary>
[TestClass]
public sealed class LossScalerTests
{
    private static List<double> Run(ILossScaler scaler, string pattern) =>
        pattern.Select(c =>
        {
            scaler.Update(c == 'T');
            return scaler.Scale;
        }).ToList();

    [TestMethod]
    public void Hysteresis2_IsolatedOverflow_SkipsStepButKeepsScale()
    {
        var scaler = new DynamicLossScaler(initialScale: 65536, scaleWindow: 1000, delayedShift: 2);
        var scales = Run(scaler, "..T..");
        CollectionAssert.AreEqual(new double[] { 65536, 65536, 65536, 65536, 65536 }, scales);
        Assert.AreEqual(1, scaler.SkippedSteps);
        Assert.AreEqual(1, scaler.CurrentHysteresis, "clean steps do not refill hysteresis without consecutive_hysteresis");

        // ...so a later, unrelated overflow halves immediately.
        scaler.Update(true);
        Assert.AreEqual(32768, scaler.Scale);
        Assert.AreEqual(2, scaler.SkippedSteps);
    }

    [TestMethod]
    public void Hysteresis2_TwoConsecutiveOverflows_HalveOnTheSecond()
    {
        var scaler = new DynamicLossScaler(initialScale: 65536, scaleWindow: 1000, delayedShift: 2);
        CollectionAssert.AreEqual(new double[] { 65536, 32768, 16384 }, Run(scaler, "TTT"));
        Assert.AreEqual(3, scaler.SkippedSteps);
    }

    [TestMethod]
    public void ConsecutiveHysteresisTrue_RefillsOnEveryCleanStep()
    {
        var scaler = new DynamicLossScaler(initialScale: 65536, scaleWindow: 1000, delayedShift: 2, consecutiveHysteresis: true);
        CollectionAssert.AreEqual(new double[] { 65536, 65536, 65536, 65536, 65536 }, Run(scaler, "T.T.T"));
        Assert.AreEqual(3, scaler.SkippedSteps);
        Assert.AreEqual(1, scaler.CurrentHysteresis);
    }

    [TestMethod]
    public void ConsecutiveHysteresisFalse_SamePattern_Halves()
    {
        var scaler = new DynamicLossScaler(initialScale: 65536, scaleWindow: 1000, delayedShift: 2, consecutiveHysteresis: false);
        CollectionAssert.AreEqual(new double[] { 65536, 65536, 32768, 32768, 16384 }, Run(scaler, "T.T.T"));
        Assert.AreEqual(3, scaler.SkippedSteps);
    }

    [TestMethod]
    public void WindowGrowth_FirstDoublingAtIterationWindowMinusOne()
    {
        // last_overflow_iter starts at -1, so (iter + 1) % 4 == 0 first at iter 3.
        var scaler = new DynamicLossScaler(initialScale: 1024, scaleWindow: 4, delayedShift: 1);
        CollectionAssert.AreEqual(
            new double[] { 1024, 1024, 1024, 2048, 2048, 2048, 2048, 4096, 4096, 4096 },
            Run(scaler, ".........."));
        Assert.AreEqual(0, scaler.SkippedSteps);
    }

    [TestMethod]
    public void WindowGrowth_CountsFromTheLastOverflow()
    {
        var scaler = new DynamicLossScaler(initialScale: 1024, scaleWindow: 4, delayedShift: 1);
        CollectionAssert.AreEqual(new double[] { 1024, 1024, 512, 512, 512, 512, 1024, 1024 }, Run(scaler, "..T....."));
        Assert.AreEqual(1, scaler.SkippedSteps);
        Assert.AreEqual(2, scaler.LastOverflowIteration);
        Assert.AreEqual(8, scaler.CurrentIteration);
    }

    [TestMethod]
    public void WindowGrowth_RefillsHysteresisWhenNotConsecutive()
    {
        var scaler = new DynamicLossScaler(initialScale: 1024, scaleWindow: 2, delayedShift: 2);
        // it0 T: hyst 2->1; it1 .: (1-0)%2=1; it2 .: 2%2=0 -> 2048 and hyst refilled to 2; it3 T: hyst 2->1, scale kept.
        CollectionAssert.AreEqual(new double[] { 1024, 1024, 2048, 2048 }, Run(scaler, "T..T"));
        Assert.AreEqual(1, scaler.CurrentHysteresis);
    }

    [TestMethod]
    public void MinLossScale_FloorsAndThenRaises()
    {
        var scaler = new DynamicLossScaler(initialScale: 8, scaleWindow: 1000, minScale: 3, delayedShift: 1);
        CollectionAssert.AreEqual(new double[] { 4, 3 }, Run(scaler, "TT"));
        var error = Assert.ThrowsExactly<LossScaleAtMinimumException>(() => scaler.Update(true));
        StringAssert.Contains(error.Message, "minimum");
        Assert.AreEqual(3, error.Scale);
        Assert.AreEqual(2, error.Iteration);
        Assert.AreEqual(2, scaler.CurrentIteration, "DeepSpeed raises before advancing the iteration");
    }

    [TestMethod]
    public void MinLossScale_WithoutRaising_StaysAtTheFloor()
    {
        var scaler = new DynamicLossScaler(initialScale: 4, scaleWindow: 1000, minScale: 1, delayedShift: 1, raiseErrorAtMinScale: false);
        CollectionAssert.AreEqual(new double[] { 2, 1, 1, 1 }, Run(scaler, "TTTT"));
        Assert.AreEqual(4, scaler.SkippedSteps);
    }

    [TestMethod]
    public void StaticScale_NeverChanges_ButSkipsOverflowedSteps()
    {
        var fp16 = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "fp16": {"enabled": true, "loss_scale": 512}}""").Config.Fp16;
        var scaler = LossScalerFactory.Create(fp16);
        Assert.IsFalse(scaler.IsDynamic);
        CollectionAssert.AreEqual(new double[] { 512, 512, 512, 512, 512 }, Run(scaler, "T.T.."));
        Assert.AreEqual(2, scaler.SkippedSteps);
    }

    [TestMethod]
    public void Factory_BareFp16_UsesDocumentedDefaults_NotTheQuirk()
    {
        var fp16 = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "fp16": {"enabled": true}}""").Config.Fp16;
        Assert.IsFalse(fp16.DynamicScalerKeysPresent);
        var scaler = (DynamicLossScaler)LossScalerFactory.Create(fp16);
        Assert.AreEqual(65536, scaler.Scale);
        Assert.AreEqual(2, scaler.DelayedShift);
        Assert.AreEqual(1000, scaler.ScaleWindow);
        Assert.AreEqual(1, scaler.MinScale);
    }

    [TestMethod]
    public void Factory_MapsConfigKeys()
    {
        var json = """{"train_batch_size": 8, "fp16": {"enabled": true, "initial_scale_power": 12, "loss_scale_window": 500, "hysteresis": 3, "consecutive_hysteresis": true, "min_loss_scale": 0.5}}""";
        var fp16 = DeepSpeedConfig.Parse(json).Config.Fp16;
        Assert.IsTrue(fp16.DynamicScalerKeysPresent);
        var scaler = (DynamicLossScaler)LossScalerFactory.Create(fp16);
        Assert.AreEqual(4096, scaler.Scale);
        Assert.AreEqual(500, scaler.ScaleWindow);
        Assert.AreEqual(3, scaler.DelayedShift);
        Assert.IsTrue(scaler.ConsecutiveHysteresis);
        Assert.AreEqual(0.5, scaler.MinScale);
    }

    [TestMethod]
    public void Factory_Bf16AndFp32_AreUnscaled()
    {
        var bf16 = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "bf16": {"enabled": true}}""").Config;
        Assert.AreEqual(1.0, LossScalerFactory.Create(bf16).Scale);
        Assert.IsFalse(LossScalerFactory.Create(bf16).IsDynamic);
    }

    [TestMethod]
    public void State_RoundTrips()
    {
        var scaler = new DynamicLossScaler(initialScale: 1024, scaleWindow: 3, delayedShift: 2);
        Run(scaler, "T..TT.");
        var restored = new DynamicLossScaler(initialScale: 1, scaleWindow: 3, delayedShift: 2);
        restored.RestoreState(scaler.CaptureState());
        const string Tail = "..T..T...";
        CollectionAssert.AreEqual(Run(scaler, Tail), Run(restored, Tail));
        Assert.AreEqual(scaler.SkippedSteps, restored.SkippedSteps);
    }
}
