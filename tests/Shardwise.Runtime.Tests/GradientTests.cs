using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Runtime.Tests;

/// <summary>Every backward of CpuOps&lt;double&gt; against float64 central finite differences of its forward.</summary>
[TestClass]
public sealed class GradientTests
{
    /// <summary>Central-difference step: truncation error ~h² and rounding error ~1e-16/h both stay far below 1e-6.</summary>
    private const double Step = 1e-6;

    /// <summary>Bound on ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖).</summary>
    private const double Tolerance = 1e-6;

    [TestMethod]
    [DataRow(OpCases.Embedding)]
    [DataRow(OpCases.LinearWithBias)]
    [DataRow(OpCases.LinearWithoutBias)]
    [DataRow(OpCases.LinearWithoutInputGradient)]
    [DataRow(OpCases.LayerNorm)]
    [DataRow(OpCases.Gelu)]
    [DataRow(OpCases.LinearGelu)]
    [DataRow(OpCases.GeluLinear)]
    [DataRow(OpCases.Add)]
    [DataRow(OpCases.AddLayerNorm)]
    [DataRow(OpCases.Attention)]
    [DataRow(OpCases.AttentionOneHead)]
    [DataRow(OpCases.AttentionLong)]
    [DataRow(OpCases.AttentionSparseBigBird)]
    [DataRow(OpCases.AttentionSparseFixed)]
    [DataRow(OpCases.AttentionSparseGroups)]
    [DataRow(OpCases.CrossEntropy)]
    [DataRow(OpCases.CrossEntropyIgnored)]
    public void BackwardMatchesCentralFiniteDifferences(string name)
    {
        OpCase<double> op = OpCases.Create<double>(name);
        OpHarness<double> h = op.Harness;
        op.Loss();
        foreach (GradientInput input in op.Inputs) h.Ops.Zero(input.Gradient);
        op.Backward(false);

        foreach (GradientInput input in op.Inputs)
        {
            double[] analytic = h.Read(input.Gradient);
            var numeric = new double[analytic.Length];
            for (int i = 0; i < numeric.Length; i++)
            {
                double original = h.Read(input.Value, i);
                h.Write(input.Value, i, original + Step);
                double plus = op.Loss();
                h.Write(input.Value, i, original - Step);
                double minus = op.Loss();
                h.Write(input.Value, i, original);
                numeric[i] = (plus - minus) / (2 * Step);
            }

            Assert.IsTrue(numeric.Any(v => v != 0), $"{name}.{input.Name}: the loss does not depend on the input.");
            double error = TestData.RelativeError(analytic, numeric);
            Assert.IsTrue(error < Tolerance, $"{name}.{input.Name}: relative error {error:E2} ≥ {Tolerance:E0}.");
        }
    }
}
