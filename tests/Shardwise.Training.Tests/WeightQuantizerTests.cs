using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Tests;

/// <summary>The quantizers against a float64 transcription of DeepSpeed's formulas, on random weights.</summary>
[TestClass]
public sealed class WeightQuantizerTests
{
    /// <summary>DeepSpeed's quantize_highbit in float64: per group, the grid, round half to even, clamp.</summary>
    private static double[] Reference(float[] weights, int groups, int bits, QuantizationType type)
    {
        int size = weights.Length / groups;
        var result = new double[weights.Length];
        double levels = Math.Pow(2, bits);
        for (int g = 0; g < groups; g++)
        {
            var group = weights.Skip(g * size).Take(size).Select(w => (double)w).ToArray();
            double min = group.Min(), max = group.Max();
            for (int i = 0; i < size; i++)
            {
                if (type == QuantizationType.Symmetric)
                {
                    double scale = 2 * Math.Max(Math.Abs(min), Math.Abs(max)) / levels;
                    result[g * size + i] = Math.Clamp(Math.Round(group[i] / scale, MidpointRounding.ToEven), -levels / 2, levels / 2 - 1) * scale;
                }
                else
                {
                    double scale = (max - min) / levels;
                    double zero = Math.Round(min / scale, MidpointRounding.ToEven) * scale;
                    result[g * size + i] = Math.Clamp(Math.Round((group[i] - zero) / scale, MidpointRounding.ToEven), 0, levels - 1) * scale + zero;
                }
            }
        }
        return result;
    }

    [TestMethod]
    [DataRow(QuantizationType.Symmetric, 3, 1)]
    [DataRow(QuantizationType.Symmetric, 4, 4)]
    [DataRow(QuantizationType.Symmetric, 8, 3)]
    [DataRow(QuantizationType.Asymmetric, 3, 1)]
    [DataRow(QuantizationType.Asymmetric, 4, 6)]
    [DataRow(QuantizationType.Asymmetric, 8, 2)]
    public void GridQuantizersMatchTheFloat64Formula(QuantizationType type, int bits, int groups)
    {
        var random = new Random(bits * 31 + groups);
        var weights = RandomData.NonZero(random, 96 * groups, 0.001, 0.2);
        var quantized = (float[])weights.Clone();
        WeightQuantizer.Quantize(quantized, groups, bits, type, QuantizationRounding.Nearest, noiseSeed: 1);
        var expected = Reference(weights, groups, bits, type);
        int size = weights.Length / groups;
        for (int g = 0; g < groups; g++)
        {
            double step = type == QuantizationType.Symmetric
                ? 2 * weights.Skip(g * size).Take(size).Max(MathF.Abs) / Math.Pow(2, bits)
                : (weights.Skip(g * size).Take(size).Max() - weights.Skip(g * size).Take(size).Min()) / Math.Pow(2, bits);
            var levels = quantized.Skip(g * size).Take(size).Distinct().Count();
            Assert.IsTrue(levels <= 1 << bits, $"group {g}: {levels} distinct values for {bits} bits");
            Assert.IsTrue(levels > 1, "the group is not collapsed");
            for (int i = g * size; i < (g + 1) * size; i++)
            {
                // float32 division can land a value one level over at an exact midpoint; nothing else may differ.
                double error = Math.Abs(quantized[i] - expected[i]);
                Assert.IsTrue(error < 1e-6 || Math.Abs(error - step) < 1e-5, $"element {i}: {quantized[i]} against {expected[i]} (level {step})");
                // The asymmetric grid's rounded zero point can leave the maximum up to half a level past the top
                // level, which the clamp pulls back: one and a half levels at most.
                double reach = type == QuantizationType.Symmetric ? step : 1.5 * step;
                Assert.IsTrue(Math.Abs(quantized[i] - weights[i]) <= reach * 1.0001 + 1e-7, $"element {i} moved {Math.Abs(quantized[i] - weights[i])}, more than {reach}");
            }
        }
    }

    [TestMethod]
    public void SymmetricFourBitsOnAHandExample()
    {
        // max |w| = 0.8, 16 levels: scale 0.1, levels −8…7, so 0.8 clamps to 0.7 and −0.8 stays −0.8.
        var weights = new[] { 0.8f, -0.8f, 0.26f, -0.04f, 0.05f, 0.15f, 0f, 0.33f };
        WeightQuantizer.Quantize(weights, 1, 4, QuantizationType.Symmetric, QuantizationRounding.Nearest, 0);
        var expected = new[] { 0.7, -0.8, 0.3, 0.0, 0.0, 0.2, 0.0, 0.3 };
        for (int i = 0; i < weights.Length; i++) Assert.AreEqual(expected[i], weights[i], 1e-6, $"element {i}");
    }

    [TestMethod]
    public void TernaryAndBinaryFollowTheirMeans()
    {
        // mean |w| = 0.3, threshold 0.21: 0.5, −0.4 and 0.3 pass, mean magnitude 0.4; 0.1, −0.2, 0.3 ... as listed.
        var ternary = new[] { 0.5f, -0.4f, 0.1f, -0.2f, 0.3f, 0.3f };
        WeightQuantizer.Quantize(ternary, 1, 2, QuantizationType.Symmetric, QuantizationRounding.Nearest, 0);
        CollectionAssert.AreEqual(new[] { 0.375f, -0.375f, 0f, 0f, 0.375f, 0.375f }, ternary.Select(v => MathF.Round(v, 6)).ToArray());

        var binary = new[] { 0.5f, -0.1f, 0.2f, -0.4f, 0f, 0.3f, -0.3f, 0.1f };
        WeightQuantizer.Quantize(binary, 2, 1, QuantizationType.Symmetric, QuantizationRounding.Nearest, 0);
        // Group means of |w|: 0.3 and 0.175; sign(0) = 0.
        CollectionAssert.AreEqual(new[] { 0.3f, -0.3f, 0.3f, -0.3f, 0f, 0.175f, -0.175f, 0.175f }, binary.Select(v => MathF.Round(v, 6)).ToArray());
    }

    [TestMethod]
    public void StochasticRoundingIsUnbiasedAndKeyedBySeed()
    {
        var weights = RandomData.NonZero(new Random(4), 4000, 0.01, 0.5);
        var first = (float[])weights.Clone();
        var again = (float[])weights.Clone();
        var other = (float[])weights.Clone();
        WeightQuantizer.Quantize(first, 1, 4, QuantizationType.Asymmetric, QuantizationRounding.Stochastic, 7);
        WeightQuantizer.Quantize(again, 1, 4, QuantizationType.Asymmetric, QuantizationRounding.Stochastic, 7);
        WeightQuantizer.Quantize(other, 1, 4, QuantizationType.Asymmetric, QuantizationRounding.Stochastic, 8);
        CollectionAssert.AreEqual(first, again, "the same seed draws the same noise");
        Assert.IsTrue(first.Zip(other).Count(p => p.First != p.Second) > 400, "another seed draws other noise");
        var nearest = (float[])weights.Clone();
        WeightQuantizer.Quantize(nearest, 1, 4, QuantizationType.Asymmetric, QuantizationRounding.Nearest, 7);
        double biasStochastic = first.Zip(weights).Average(p => p.First - p.Second);
        double meanError = nearest.Zip(weights).Average(p => Math.Abs(p.First - p.Second));
        Assert.IsTrue(Math.Abs(biasStochastic) < meanError / 4, $"stochastic rounding bias {biasStochastic:E2} against nearest's mean error {meanError:E2}");
        Assert.IsTrue(first.Zip(nearest).Count(p => p.First != p.Second) > 400, "the noise changes levels");
    }

    [TestMethod]
    public void RefusesWhatDeepSpeedRefuses()
    {
        var weights = new float[10];
        Assert.ThrowsExactly<ArgumentException>(() => WeightQuantizer.Quantize(weights, 3, 8, QuantizationType.Symmetric, QuantizationRounding.Nearest, 0));
        Assert.ThrowsExactly<ArgumentException>(() => WeightQuantizer.Quantize(weights, 1, 2, QuantizationType.Asymmetric, QuantizationRounding.Nearest, 0));
        Assert.ThrowsExactly<ArgumentException>(() => WeightQuantizer.Quantize(weights, 1, 1, QuantizationType.Symmetric, QuantizationRounding.Stochastic, 0));
    }
}
