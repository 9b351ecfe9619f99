using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

[TestClass]
public sealed class GradientClippingTests
{
    [TestMethod]
    public void ClipsToThreshold_AndReturnsTheNormBeforeClipping()
    {
        var g = new float[] { 3f, 4f };
        var norm = GradientClipping.ClipByGlobalNorm(g, 1.0);
        Assert.AreEqual(5.0, norm, 1e-12);
        var coefficient = 1.0 / (5.0 + 1e-6);
        Assert.AreEqual(3 * coefficient, g[0], 1e-7);
        Assert.AreEqual(4 * coefficient, g[1], 1e-7);
        Assert.AreEqual(1.0, GradientClipping.GlobalNorm(g), 1e-6);
    }

    [TestMethod]
    public void BelowThreshold_Unchanged()
    {
        var g = new float[] { 3f, 4f };
        Assert.AreEqual(5.0, GradientClipping.ClipByGlobalNorm(g, 10.0), 1e-12);
        CollectionAssert.AreEqual(new float[] { 3f, 4f }, g);
    }

    [TestMethod]
    public void ZeroThreshold_MeansOff()
    {
        var g = new float[] { 300f, 400f };
        Assert.AreEqual(500.0, GradientClipping.ClipByGlobalNorm(g, 0.0), 1e-9);
        CollectionAssert.AreEqual(new float[] { 300f, 400f }, g);
    }

    [TestMethod]
    public void NormEqualToThreshold_IsScaledByDeepSpeedsEpsilon()
    {
        // clip / (norm + 1e-6) < 1 even when norm == clip: DeepSpeed scales by 5/(5+1e-6).
        Assert.AreEqual(5.0 / (5.0 + 1e-6), GradientClipping.ClipCoefficient(5.0, 5.0), 1e-15);
        Assert.IsTrue(GradientClipping.ClipCoefficient(5.0, 5.0) < 1.0);
        Assert.AreEqual(1.0, GradientClipping.ClipCoefficient(4.0, 5.0));
    }

    [TestMethod]
    public void NaNGradient_ReturnsNaNNorm_AndLeavesValuesForTheOverflowCheck()
    {
        var g = new float[] { 1f, float.NaN, 2f };
        Assert.IsTrue(double.IsNaN(GradientClipping.ClipByGlobalNorm(g, 1.0)));
        Assert.AreEqual(1f, g[0]);
        Assert.AreEqual(2f, g[2]);
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(15)]
    [DataRow(16)]
    [DataRow(17)]
    [DataRow(1003)]
    public void NormAndScale_AllWidthsMatchADoubleReference(int length)
    {
        var random = new Random(length);
        var g = RandomData.NonZero(random, length, 0.001, 3);
        var expectedSum = g.Sum(x => (double)x * x);
        foreach (var width in new[] { SimdWidth.Scalar, SimdWidth.Vector256, SimdWidth.Vector512 })
        {
            Assert.AreEqual(expectedSum, GradientClipping.SumOfSquares(g, width), expectedSum * 1e-12, $"{width}");
            var scaled = (float[])g.Clone();
            GradientClipping.Scale(scaled, 0.37f, width);
            for (var i = 0; i < length; i++)
            {
                Assert.AreEqual(g[i] * 0.37f, scaled[i], $"{width} element {i}");
            }
        }
    }

    [TestMethod]
    public void ClippedVectorHasNormJustBelowThreshold()
    {
        var g = RandomData.NonZero(new Random(9), 513, 0.5, 5);
        var before = GradientClipping.ClipByGlobalNorm(g, 2.5);
        Assert.IsTrue(before > 2.5);
        var after = GradientClipping.GlobalNorm(g);
        Assert.AreEqual(2.5 * before / (before + 1e-6), after, 1e-5);
    }
}
