using System;
using System.Linq;
using System.Numerics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// GeluKernels (x·σ(2u), one exponential per element on 256-bit vectors) against the tanh form in float64: in float
/// and double, across [−12, 12] and beyond, at lengths that leave a partial vector; the result of an element does not
/// depend on where a span is split (CpuOps splits across cores); in place, accumulating, NaN in NaN out.
/// </summary>
[TestClass]
public sealed class GeluKernelTests
{
    private const double C = 0.79788456080286535587989211986876, K = 0.044715;

    // 0.5·(1 + tanh u), for u < 0 as e^(2u)/(1 + e^(2u)) (the same number): in float64 too, 1 + tanh u cancels to 0
    // once tanh u rounds to −1 (x below about −6).
    private static double Reference(double x)
    {
        double u = C * (x + K * x * x * x);
        return x * (u >= 0 ? 0.5 * (1 + Math.Tanh(u)) : Math.Exp(2 * u) / (1 + Math.Exp(2 * u)));
    }

    private static double ReferenceDerivative(double x)
    {
        double t = Math.Tanh(C * (x + K * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * K * x * x);
    }

    private static double[] Inputs(int count)
    {
        var values = TestData.Uniform(31, count, scale: 12).ToList();
        values.AddRange([0.0, 1e-30, -1e-30, -4.0, -3.99, 4.0, 30.0, -30.0, 1e5, -1e5]);
        return values.ToArray();
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(1001)]
    public void ForwardAndBackwardFollowTheTanhFormInFloat64(int count)
    {
        Check<float>(count, relative: 4e-6, absolute: 2e-6);
        Check<double>(count, relative: 1e-13, absolute: 1e-14);
    }

    private static void Check<T>(int count, double relative, double absolute) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double[] inputs = Inputs(count), upstream = TestData.Uniform(32, inputs.Length);
        T[] x = inputs.Select(T.CreateChecked).ToArray(), dy = upstream.Select(T.CreateChecked).ToArray();
        var y = new T[x.Length];
        var dx = new T[x.Length];
        GeluKernels.Forward<T>(x, y);
        GeluKernels.Backward<T>(x, dy, dx, accumulate: false);
        for (int i = 0; i < x.Length; i++)
        {
            double xi = double.CreateChecked(x[i]), expected = Reference(xi);
            double error = Math.Abs(double.CreateChecked(y[i]) - expected);
            // Below 1e-20 a GeLU value is zero for every purpose (past the exponent cap the kernel gives x·e^−80).
            Assert.IsTrue(error <= relative * Math.Abs(expected) + 1e-20,
                $"{typeof(T).Name} GeLU({xi}) = {y[i]}, float64 {expected}");
            double expectedGradient = double.CreateChecked(dy[i]) * ReferenceDerivative(xi);
            double gradientError = Math.Abs(double.CreateChecked(dx[i]) - expectedGradient);
            Assert.IsTrue(gradientError <= absolute * Math.Abs(double.CreateChecked(dy[i])) + 1e-30,
                $"{typeof(T).Name} dy·GeLU′({xi}) = {dx[i]}, float64 {expectedGradient}");
        }
    }

    [TestMethod]
    public void NegativeInputsKeepTheirDigits()
    {
        // 0.5·x·(1 + tanh u) in float cancels for negative x (the old kernel: 3e-3 relative at x = −4).
        float[] x = [-4f, -3.5f, -3f, -2.5f];
        var y = new float[x.Length];
        GeluKernels.Forward<float>(x, y);
        for (int i = 0; i < x.Length; i++)
            Assert.AreEqual(Reference(x[i]), y[i], 2e-6 * Math.Abs(Reference(x[i])), $"GeLU({x[i]})");
    }

    [TestMethod]
    public void AnElementsResultDoesNotDependOnWhereTheSpanIsSplit()
    {
        float[] x = Inputs(1001).Select(v => (float)v).ToArray(), dy = TestData.UniformSingle(33, x.Length);
        float[] previous = TestData.UniformSingle(34, x.Length);
        var whole = new float[x.Length];
        var wholeGradient = (float[])previous.Clone();
        GeluKernels.Forward<float>(x, whole);
        GeluKernels.Backward<float>(x, dy, wholeGradient, accumulate: true);

        var pieces = new float[x.Length];
        var piecesGradient = (float[])previous.Clone();
        int start = 0;
        foreach (int length in new[] { 3, 250, 7, 1, x.Length - 261 })
        {
            GeluKernels.Forward<float>(x.AsSpan(start, length), pieces.AsSpan(start, length));
            GeluKernels.Backward<float>(x.AsSpan(start, length), dy.AsSpan(start, length), piecesGradient.AsSpan(start, length), accumulate: true);
            start += length;
        }
        Assert.AreEqual(x.Length, start);
        CollectionAssert.AreEqual(whole, pieces);
        CollectionAssert.AreEqual(wholeGradient, piecesGradient);
    }

    [TestMethod]
    public void InPlaceAndAccumulatingEqualTheSeparateResults()
    {
        float[] x = TestData.UniformSingle(35, 37, scale: 5), dy = TestData.UniformSingle(36, 37), previous = TestData.UniformSingle(37, 37);
        var y = new float[x.Length];
        GeluKernels.Forward<float>(x, y);
        var inPlace = (float[])x.Clone();
        GeluKernels.Forward<float>(inPlace, inPlace);
        CollectionAssert.AreEqual(y, inPlace);

        var gradient = new float[x.Length];
        GeluKernels.Backward<float>(x, dy, gradient, accumulate: false);
        var overDy = (float[])dy.Clone();
        GeluKernels.Backward<float>(x, overDy, overDy, accumulate: false);
        CollectionAssert.AreEqual(gradient, overDy);

        var accumulated = (float[])previous.Clone();
        GeluKernels.Backward<float>(x, dy, accumulated, accumulate: true);
        CollectionAssert.AreEqual(previous.Zip(gradient, (a, b) => a + b).ToArray(), accumulated);
        Assert.IsTrue(gradient.Any(g => g != 0) && y.Any(v => v != 0));
    }

    [TestMethod]
    public void NaNGivesNaNAndShortOutputsAreRefused()
    {
        float[] x = [float.NaN, 1f], y = new float[2];
        GeluKernels.Forward<float>(x, y);
        Assert.IsTrue(float.IsNaN(y[0]));
        Assert.AreEqual((float)Reference(1), y[1], 1e-6f);
        Assert.ThrowsExactly<ArgumentException>(() => GeluKernels.Forward<float>(x, new float[1]));
        Assert.ThrowsExactly<ArgumentException>(() => GeluKernels.Backward<float>(x, new float[2], new float[1], accumulate: false));
    }
}
