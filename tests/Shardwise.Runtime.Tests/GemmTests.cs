using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;

namespace Shardwise.Runtime.Tests;

/// <summary>The OpenBLAS-backed product against a naive triple loop, including strided sub-matrices.</summary>
[TestClass]
public sealed class GemmTests
{
    [TestMethod]
    [DataRow(false, false)]
    [DataRow(false, true)]
    [DataRow(true, false)]
    [DataRow(true, true)]
    public void DoubleMatchesNaiveProduct(bool transposeA, bool transposeB)
    {
        const int m = 7, n = 5, k = 11, padding = 3;
        const double alpha = 1.25, beta = -0.5;
        int aRows = transposeA ? k : m, aColumns = transposeA ? m : k;
        int bRows = transposeB ? n : k, bColumns = transposeB ? k : n;
        int lda = aColumns + padding, ldb = bColumns + padding, ldc = n + padding;
        double[] a = TestData.Uniform(1, aRows * lda), b = TestData.Uniform(2, bRows * ldb);
        double[] c = TestData.Uniform(3, m * ldc);
        double[] expected = (double[])c.Clone();
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    double aValue = transposeA ? a[p * lda + i] : a[i * lda + p];
                    double bValue = transposeB ? b[j * ldb + p] : b[p * ldb + j];
                    sum += aValue * bValue;
                }

                expected[i * ldc + j] = alpha * sum + beta * c[i * ldc + j];
            }
        }

        Gemm.Multiply(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

        // Padding columns of c lie outside the product and must be left alone.
        Assert.IsTrue(TestData.RelativeError(expected, c) < 1e-14,
            $"relative error {TestData.RelativeError(expected, c):E2}");
    }

    [TestMethod]
    public void FloatMatchesNaiveProduct()
    {
        const int m = 13, n = 3, k = 6;
        float[] a = TestData.UniformSingle(4, m * k), b = TestData.UniformSingle(5, n * k);
        var c = new float[m * n];
        var expected = new float[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++) sum += (double)a[i * k + p] * b[j * k + p];
                expected[i * n + j] = (float)sum;
            }
        }

        Gemm.Multiply(false, true, m, n, k, 1f, a, k, b, k, 0f, c, n);

        Assert.IsTrue(TestData.RelativeError(expected, c) < 1e-6, $"relative error {TestData.RelativeError(expected, c):E2}");
    }

    [TestMethod]
    public void BetaZeroIgnoresPreviousContentsEvenNaN()
    {
        double[] a = [1, 2], b = [3, 4];
        double[] c = [double.NaN];
        Gemm.Multiply(false, false, 1, 1, 2, 1.0, a, 2, b, 1, 0.0, c, 1);
        Assert.AreEqual(11.0, c[0]);
    }

    [TestMethod]
    public void EmptyInnerDimensionScalesC()
    {
        double[] c = [2, 4];
        Gemm.Multiply<double>(false, false, 1, 2, 0, 1.0, [], 1, [], 2, 0.5, c, 2);
        CollectionAssert.AreEqual(new double[] { 1, 2 }, c);
    }

    [TestMethod]
    public void TooShortSpanIsRejectedBeforeBlasReadsPastIt()
    {
        double[] a = new double[5], b = new double[6], c = new double[4];
        var error = Assert.ThrowsExactly<ArgumentException>(() =>
            Gemm.Multiply(false, false, 2, 2, 3, 1.0, a, 3, b, 2, 0.0, c, 2));
        StringAssert.Contains(error.Message, "needs 6 elements but its span has 5");
    }

    [TestMethod]
    public void HalfPrecisionElementsAreNotSupported()
    {
        Assert.ThrowsExactly<NotSupportedException>(() => new CpuOps<Half>());
    }
}
