using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// LayerNormKernels.Backward (vector passes with a scalar tail) against the formula in float64, in float at widths
/// with and without a partial vector, overwriting and accumulating, with dx over dy, and dGamma/dBeta added to.
/// </summary>
[TestClass]
public sealed class LayerNormKernelTests
{
    [TestMethod]
    [DataRow(8, false)]
    [DataRow(13, true)]
    [DataRow(128, false)]
    [DataRow(131, true)]
    public void BackwardFollowsTheFormulaInFloat64(int dim, bool accumulate)
    {
        const int rows = 5;
        double[] x = TestData.Uniform(41, rows * dim, scale: 3), gamma = TestData.Uniform(42, dim), dy = TestData.Uniform(43, rows * dim);
        double[] previous = TestData.Uniform(44, rows * dim), gammaPrevious = TestData.Uniform(45, dim), betaPrevious = TestData.Uniform(46, dim);
        var mean = new double[rows];
        var rstd = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = x.Skip(r * dim).Take(dim).ToArray();
            mean[r] = row.Average();
            rstd[r] = 1 / Math.Sqrt(row.Select(v => (v - mean[r]) * (v - mean[r])).Average() + LayerNormKernels.Epsilon);
        }

        double[] expectedDx = accumulate ? (double[])previous.Clone() : new double[rows * dim];
        double[] expectedDGamma = (double[])gammaPrevious.Clone(), expectedDBeta = (double[])betaPrevious.Clone();
        for (int r = 0; r < rows; r++)
        {
            double meanG = 0, meanGxHat = 0;
            for (int j = 0; j < dim; j++)
            {
                double xHat = (x[r * dim + j] - mean[r]) * rstd[r], g = dy[r * dim + j] * gamma[j];
                meanG += g / dim;
                meanGxHat += g * xHat / dim;
                expectedDGamma[j] += dy[r * dim + j] * xHat;
                expectedDBeta[j] += dy[r * dim + j];
            }
            for (int j = 0; j < dim; j++)
            {
                double xHat = (x[r * dim + j] - mean[r]) * rstd[r];
                expectedDx[r * dim + j] += rstd[r] * (dy[r * dim + j] * gamma[j] - meanG - xHat * meanGxHat);
            }
        }

        static float[] Single(double[] values) => values.Select(v => (float)v).ToArray();
        float[] dx = accumulate ? Single(previous) : Single(dy), dGamma = Single(gammaPrevious), dBeta = Single(betaPrevious);
        float[] dyInput = accumulate ? Single(dy) : dx; // overwriting: dx over dy
        LayerNormKernels.Backward<float>(Single(x), Single(gamma), Single(mean), Single(rstd), dyInput, dx, dGamma, dBeta, rows, dim, accumulate);

        Assert.IsTrue(TestData.RelativeError(Single(expectedDx), dx) < 2e-5, $"dx, dim {dim}");
        Assert.IsTrue(TestData.RelativeError(Single(expectedDGamma), dGamma) < 2e-5, $"dGamma, dim {dim}");
        Assert.IsTrue(TestData.RelativeError(Single(expectedDBeta), dBeta) < 2e-5, $"dBeta, dim {dim}");
    }
}
