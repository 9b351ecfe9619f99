using System;
using System.Numerics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// The fused Linear/GeLU ops of CpuOps are bitwise the unfused sequences the generator replaces with them, in float
/// and double, on shapes large enough for the parallel GeLU and GEMM paths; parameter gradients added onto earlier
/// ones, the pre-activation gradient overwritten whatever it held. (Their gradients against finite differences:
/// <see cref="GradientTests"/>, cases LinearGelu and GeluLinear.)
/// </summary>
[TestClass]
public sealed class FusedLinearGeluTests
{
    public static System.Collections.Generic.IEnumerable<object[]> Shapes() =>
    [
        [7, 5, 6, true],
        [7, 5, 6, false],
        [300, 96, 130, true], // 39,000 GeLU elements: CpuOps splits them across cores
    ];

    [TestMethod]
    [DynamicData(nameof(Shapes))]
    public void LinearGeluIsLinearThenGelu(int rows, int inDim, int outDim, bool withBias)
    {
        LinearGeluIsLinearThenGelu<float>(rows, inDim, outDim, withBias);
        LinearGeluIsLinearThenGelu<double>(rows, inDim, outDim, withBias);
    }

    [TestMethod]
    [DynamicData(nameof(Shapes))]
    public void GeluLinearBackwardIsLinearBackwardThenGeluBackward(int rows, int inDim, int outDim, bool withBias)
    {
        GeluLinearBackwardIsUnfused<float>(rows, inDim, outDim, withBias);
        GeluLinearBackwardIsUnfused<double>(rows, inDim, outDim, withBias);
    }

    private static void LinearGeluIsLinearThenGelu<T>(int rows, int inDim, int outDim, bool withBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var fused = new SeededCpuOps<T>(seed: rows + inDim);
        Slice x = fused.Random(rows * inDim, 2), w = fused.Random(outDim * inDim, 0.5);
        Slice? bias = withBias ? fused.Random(outDim) : null;
        Slice pre = fused.Random(rows * outDim), y = fused.Random(rows * outDim);
        Slice preUnfused = fused.Random(rows * outDim), yUnfused = fused.Random(rows * outDim);

        fused.Ops.LinearGelu(x, w, bias, pre, y, rows, inDim, outDim);
        fused.Ops.Linear(x, w, bias, preUnfused, rows, inDim, outDim);
        fused.Ops.Gelu(preUnfused, yUnfused, (long)rows * outDim);

        string at = $"{typeof(T).Name} {rows}×{inDim}→{outDim} bias {withBias}";
        CollectionAssert.AreEqual(fused.Read(preUnfused), fused.Read(pre), $"pre-activation, {at}");
        CollectionAssert.AreEqual(fused.Read(yUnfused), fused.Read(y), $"GeLU output, {at}");
        Assert.IsTrue(Array.Exists(fused.Read(y), v => v < 0), $"{at}: some pre-activations are negative (GeLU is not the identity there)");
    }

    private static void GeluLinearBackwardIsUnfused<T>(int rows, int inDim, int outDim, bool withBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // Two backends with identical contents: one runs the fused call, the other the unfused sequence.
        var fused = new SeededCpuOps<T>(seed: 3 * rows + outDim);
        var unfused = new SeededCpuOps<T>(seed: 3 * rows + outDim);
        Slice pre = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(rows * inDim, 2)), x = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(rows * inDim));
        Slice w = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(outDim * inDim, 0.5)), dy = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(rows * outDim));
        Slice dPre = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(rows * inDim));
        Slice dw = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(outDim * inDim));
        Slice? dBias = withBias ? SeededCpuOps<T>.Both(fused, unfused, s => s.Random(outDim)) : null;
        double[] staleDPre = fused.Read(dPre), earlierDw = fused.Read(dw);

        fused.Ops.GeluLinearBackward(pre, x, w, dy, dPre, dw, dBias, rows, inDim, outDim);
        unfused.Ops.LinearBackward(x, w, dy, dPre, dw, dBias, rows, inDim, outDim, accumulate: false);
        unfused.Ops.GeluBackward(pre, dPre, dPre, (long)rows * inDim, accumulate: false);

        string at = $"{typeof(T).Name} {rows}×{inDim}→{outDim} bias {withBias}";
        CollectionAssert.AreEqual(unfused.Read(dPre), fused.Read(dPre), $"dPre, {at}");
        CollectionAssert.AreEqual(unfused.Read(dw), fused.Read(dw), $"dW, {at}");
        if (dBias is { } db) CollectionAssert.AreEqual(unfused.Read(db), fused.Read(db), $"dBias, {at}");
        CollectionAssert.AreNotEqual(staleDPre, fused.Read(dPre), $"{at}: dPre was written");
        CollectionAssert.AreNotEqual(earlierDw, fused.Read(dw), $"{at}: dW was added to");
    }
}
