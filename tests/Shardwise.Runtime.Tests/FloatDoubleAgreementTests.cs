using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Runtime.Tests;

/// <summary>CpuOps&lt;float&gt; and CpuOps&lt;double&gt; run the same kernels, so they agree to float precision.</summary>
[TestClass]
public sealed class FloatDoubleAgreementTests
{
    private const double ForwardTolerance = 1e-5;
    private const double BackwardTolerance = 1e-4;

    [TestMethod]
    [DataRow(OpCases.Embedding)]
    [DataRow(OpCases.LinearWithBias)]
    [DataRow(OpCases.LinearWithoutBias)]
    [DataRow(OpCases.LayerNorm)]
    [DataRow(OpCases.Gelu)]
    [DataRow(OpCases.Add)]
    [DataRow(OpCases.AddLayerNorm)]
    [DataRow(OpCases.Attention)]
    [DataRow(OpCases.CrossEntropy)]
    [DataRow(OpCases.CrossEntropyIgnored)]
    public void FloatMatchesDouble(string name)
    {
        OpCase<float> single = OpCases.Create<float>(name);
        OpCase<double> wide = OpCases.Create<double>(name);
        double singleLoss = single.Loss(), wideLoss = wide.Loss();

        double forwardError = single.Output is { } output
            ? TestData.RelativeError(single.Harness.Read(output), wide.Harness.Read(wide.Output!.Value))
            : Math.Abs(singleLoss - wideLoss) / Math.Abs(wideLoss);
        Assert.IsTrue(forwardError < ForwardTolerance, $"{name} forward: relative error {forwardError:E2}.");

        foreach (GradientInput input in single.Inputs) single.Harness.Ops.Zero(input.Gradient);
        foreach (GradientInput input in wide.Inputs) wide.Harness.Ops.Zero(input.Gradient);
        single.Backward(false);
        wide.Backward(false);
        foreach ((GradientInput s, GradientInput w) in single.Inputs.Zip(wide.Inputs))
        {
            double error = TestData.RelativeError(single.Harness.Read(s.Gradient), wide.Harness.Read(w.Gradient));
            Assert.IsTrue(error < BackwardTolerance, $"{name}.{s.Name} backward: relative error {error:E2}.");
        }
    }
}
