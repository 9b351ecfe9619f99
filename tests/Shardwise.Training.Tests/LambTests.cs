using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

/// <summary>Lamb (DeepSpeed's FusedLamb) against the float64 <see cref="LambReference"/>, tensor by tensor.</summary>
[TestClass]
public sealed class LambTests
{
    private const double RelativeTolerance = 2e-6;

    /// <summary>Tensors of 1, 7, 300 and 33 elements in one buffer, the third all zeros (its coefficient is then 1).</summary>
    private static readonly Range[] Tensors = [new(0, 1), new(1, 8), new(8, 308), new(308, 341)];

    [TestMethod]
    [DataRow(true, false, 10.0, 0.01, DisplayName = "DeepSpeed's defaults")]
    [DataRow(false, true, 10.0, 0.01, DisplayName = "no bias correction, eps inside the root")]
    [DataRow(true, false, 0.3, 0.01, DisplayName = "bert's max_coeff 0.3: the clamp bites")]
    [DataRow(true, false, 100.0, 2.0, DisplayName = "min_coeff 2: the clamp bites from below")]
    public void MatchesTheFloat64Reference(bool biasCorrection, bool epsInsideSqrt, double maxCoeff, double minCoeff)
    {
        const int Length = 341, Steps = 6;
        var lamb = new LambConfig { MaxCoeff = maxCoeff, MinCoeff = minCoeff, EpsInsideSqrt = epsInsideSqrt };
        var options = new AdamOptions { Beta1 = 0.9, Beta2 = 0.999, Eps = 1e-6, WeightDecay = 0.01, BiasCorrection = biasCorrection, Lamb = lamb };
        var random = new Random(17);
        float[] p = RandomData.NonZero(random, Length, 0.5, 2);
        Array.Clear(p, 8, 300); // a zero tensor: ‖w‖ = 0 gives coefficient 1
        double[] pRef = RandomData.ToDouble(p);
        var optimizer = new AdamOptimizer(Length, options, Tensors);
        var reference = new LambReference(Length, 0.9, 0.999, 1e-6, 0.01, biasCorrection, minCoeff, maxCoeff, epsInsideSqrt);
        bool clamped = false;
        for (int step = 0; step < Steps; step++)
        {
            float[] g = RandomData.NonZero(random, Length, 0.01, 1);
            optimizer.Step(p, g, 1e-2);
            reference.Step(pRef, RandomData.ToDouble(g), 1e-2, Tensors);
            clamped |= reference.LastCoefficients.Any(c => c == maxCoeff || c == minCoeff);
        }

        // Relative to each tensor's largest weight: the zero tensor's weights are all of the steps' size.
        foreach (Range tensor in Tensors)
        {
            var (start, count) = tensor.GetOffsetAndLength(Length);
            double scale = pRef.Skip(start).Take(count).Max(Math.Abs);
            for (int i = start; i < start + count; i++)
            {
                double error = Math.Abs(p[i] - pRef[i]) / scale;
                Assert.IsTrue(error < RelativeTolerance, $"param[{i}]: {p[i]} vs {pRef[i]} (error {error:E2} of the tensor's largest, {scale:E2})");
            }
        }

        Assert.AreEqual(Steps, optimizer.State.Step);
        if (maxCoeff < 1 || minCoeff > 1) Assert.IsTrue(clamped, "the case must exercise the clamp");
    }

    /// <summary>Each tensor has its own trust ratio: scaling one tensor's weights changes its step and no other's.</summary>
    [TestMethod]
    public void TheTrustRatioIsPerTensor()
    {
        var options = new AdamOptions { WeightDecay = 0, Lamb = new LambConfig { MaxCoeff = 1e6, MinCoeff = 0 } };
        Range[] tensors = [new(0, 4), new(4, 8)];
        float[] g = [0.1f, -0.2f, 0.3f, 0.4f, 0.1f, -0.2f, 0.3f, 0.4f];
        float[] small = [1, 1, 1, 1, 1, 1, 1, 1], large = [1, 1, 1, 1, 10, 10, 10, 10];
        float[] smallStart = (float[])small.Clone(), largeStart = (float[])large.Clone();
        new AdamOptimizer(8, options, tensors).Step(small, g, 1e-3);
        new AdamOptimizer(8, options, tensors).Step(large, g, 1e-3);
        for (int i = 0; i < 4; i++) Assert.AreEqual(smallStart[i] - small[i], largeStart[i] - large[i], "the first tensor's step is its own");
        for (int i = 4; i < 8; i++)
            Assert.AreEqual(10 * (smallStart[i] - small[i]), largeStart[i] - large[i], 1e-6, "‖w‖ ten times larger: a ten times larger step");
    }

    [TestMethod]
    public void TrustRatioClampsAndGuardsZeroNorms()
    {
        Assert.AreEqual(1f, LambKernel.TrustRatio(0, 5, 0.01f, 10f), "a zero tensor");
        Assert.AreEqual(1f, LambKernel.TrustRatio(5, 0, 0.01f, 10f), "no update");
        Assert.AreEqual(10f, LambKernel.TrustRatio(500, 1, 0.01f, 10f));
        Assert.AreEqual(0.01f, LambKernel.TrustRatio(1, 500, 0.01f, 10f));
        Assert.AreEqual(0.5f, LambKernel.TrustRatio(1, 2, 0.01f, 10f));
    }

    [TestMethod]
    public void LambWithoutTensorRanges_IsACallerBug() =>
        Assert.ThrowsExactly<ArgumentException>(() => new AdamOptimizer(4, new AdamOptions { Lamb = new LambConfig() }));
}
