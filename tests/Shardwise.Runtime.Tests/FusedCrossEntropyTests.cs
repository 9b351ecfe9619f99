using System.Linq;
using System.Numerics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// CpuOps.CrossEntropyWithGradient is CrossEntropy then CrossEntropyBackward bit for bit — the loss and dLogits — in
/// float and double, on one core and split across cores, overwriting or accumulating into dLogits, and with dLogits
/// over the logits themselves (as the generated ForwardBackward calls it).
/// </summary>
[TestClass]
public sealed class FusedCrossEntropyTests
{
    public enum Gradient { OwnBuffer, Accumulated, OverTheLogits }

    public static System.Collections.Generic.IEnumerable<object[]> Cases()
    {
        foreach (Gradient gradient in new[] { Gradient.OwnBuffer, Gradient.Accumulated, Gradient.OverTheLogits })
        {
            yield return [3, 11, gradient];
            yield return [97, 301, gradient]; // about 29,000 logits: CpuOps splits the rows across cores
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void LossAndGradientAreTheSeparateOps(int rows, int vocabulary, Gradient gradient)
    {
        Check<float>(rows, vocabulary, gradient);
        Check<double>(rows, vocabulary, gradient);
    }

    private static void Check<T>(int rows, int vocabulary, Gradient gradient) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = rows * vocabulary;
        double[] logitValues = TestData.Uniform(21, n, scale: 4), previous = TestData.Uniform(22, n);
        int[] targetValues = TestData.Ids(23, rows, vocabulary);
        bool accumulate = gradient == Gradient.Accumulated;
        T scale = T.CreateChecked(0.375 * rows);

        var separate = new OpHarness<T>(capacity: 4 * n);
        Slice logits = separate.Activation(logitValues), dLogits = separate.Activation(previous);
        IndexSlice targets = separate.Indices(targetValues);
        if (gradient == Gradient.OverTheLogits) dLogits = logits;
        T expectedLoss = separate.Ops.CrossEntropy(logits, targets, rows, vocabulary);
        separate.Ops.CrossEntropyBackward(logits, targets, dLogits, rows, vocabulary, scale, accumulate);

        var fused = new OpHarness<T>(capacity: 4 * n);
        Slice fusedLogits = fused.Activation(logitValues), fusedDLogits = fused.Activation(previous);
        IndexSlice fusedTargets = fused.Indices(targetValues);
        if (gradient == Gradient.OverTheLogits) fusedDLogits = fusedLogits;
        T loss = fused.Ops.CrossEntropyWithGradient(fusedLogits, fusedTargets, fusedDLogits, rows, vocabulary, scale, accumulate);

        string at = $"{typeof(T).Name}, {rows} × {vocabulary}, {gradient}";
        Assert.AreEqual(expectedLoss, loss, $"loss, {at}");
        Assert.IsTrue(double.CreateChecked(loss) > 0, $"a positive loss, {at}");
        double[] expected = separate.Read(dLogits);
        CollectionAssert.AreEqual(expected, fused.Read(fusedDLogits), $"dLogits, {at}");
        Assert.IsTrue(expected.Any(g => g != 0) && !expected.SequenceEqual(previous), $"a gradient was written, {at}");
        if (gradient != Gradient.OverTheLogits)
            CollectionAssert.AreEqual(separate.Read(logits), fused.Read(fusedLogits), $"logits unchanged, {at}");
    }
}
