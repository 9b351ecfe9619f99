using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>accumulate = false overwrites activation gradients, true adds; parameter gradients always add.</summary>
[TestClass]
public sealed class AccumulateTests
{
    private const double Tolerance = 1e-12;

    [TestMethod]
    [DataRow(OpCases.Embedding)]
    [DataRow(OpCases.LinearWithBias)]
    [DataRow(OpCases.LinearWithoutBias)]
    [DataRow(OpCases.LinearWithoutInputGradient)]
    [DataRow(OpCases.LayerNorm)]
    [DataRow(OpCases.Gelu)]
    [DataRow(OpCases.Add)]
    [DataRow(OpCases.AddLayerNorm)]
    [DataRow(OpCases.Attention)]
    [DataRow(OpCases.AttentionLong)]
    [DataRow(OpCases.AttentionSparseBigBird)]
    [DataRow(OpCases.CrossEntropy)]
    [DataRow(OpCases.CrossEntropyIgnored)]
    public void OverwriteReplacesActivationGradientsAndAccumulateAdds(string name)
    {
        OpCase<double> op = OpCases.Create<double>(name);
        OpHarness<double> h = op.Harness;
        op.Loss();
        foreach (GradientInput input in op.Inputs) h.Ops.Zero(input.Gradient);
        op.Backward(false);
        double[][] fresh = op.Inputs.Select(input => h.Read(input.Gradient)).ToArray();
        double[][] previous = op.Inputs
            .Select((input, k) => TestData.Uniform(900 + k, (int)input.Gradient.Length)).ToArray();

        WritePrevious();
        op.Backward(false);
        for (int k = 0; k < op.Inputs.Length; k++)
        {
            double[] expected = op.Inputs[k].IsParameter ? TestData.Sum(previous[k], fresh[k]) : fresh[k];
            AssertClose(expected, h.Read(op.Inputs[k].Gradient), $"{name}.{op.Inputs[k].Name} (accumulate: false)");
        }

        WritePrevious();
        op.Backward(true);
        for (int k = 0; k < op.Inputs.Length; k++)
        {
            AssertClose(TestData.Sum(previous[k], fresh[k]), h.Read(op.Inputs[k].Gradient),
                $"{name}.{op.Inputs[k].Name} (accumulate: true)");
        }

        void WritePrevious()
        {
            for (int k = 0; k < op.Inputs.Length; k++) h.Write(op.Inputs[k].Gradient, previous[k]);
        }
    }

    [TestMethod]
    public void CrossEntropyBackwardScalesTheGradient()
    {
        const int rows = 4, vocabulary = 9;
        const double scale = 2.5;
        var h = new OpHarness<double>();
        Slice logits = h.Activation(TestData.Uniform(1, rows * vocabulary, scale: 2));
        IndexSlice targets = h.Indices(TestData.Ids(2, rows, vocabulary));
        Slice unit = h.Activation(rows * vocabulary), scaled = h.Activation(rows * vocabulary);

        h.Ops.CrossEntropyBackward(logits, targets, unit, rows, vocabulary, 1.0, accumulate: false);
        h.Ops.CrossEntropyBackward(logits, targets, scaled, rows, vocabulary, scale, accumulate: false);

        AssertClose(h.Read(unit).Select(v => v * scale).ToArray(), h.Read(scaled), "scaled cross-entropy gradient");
    }

    private static void AssertClose(double[] expected, double[] actual, string what)
    {
        double error = TestData.RelativeError(expected, actual);
        Assert.IsTrue(error < Tolerance, $"{what}: relative error {error:E2}.");
    }
}
