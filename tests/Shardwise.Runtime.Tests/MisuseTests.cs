using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>Wrong shapes and sizes fail with messages that name them, in eager code and in CpuOps.</summary>
[TestClass]
public sealed class MisuseTests
{
    [TestMethod]
    public void TensorFactoriesCheckTheElementCount()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => Tensor.FromArray(new float[5], 2, 3));
        StringAssert.Contains(error.Message, "[2, 3] holds 6 elements but 5 were given");
        Assert.ThrowsExactly<ArgumentException>(() => Tensor.Tokens(new int[4], 5));
        Assert.ThrowsExactly<ArgumentException>(() => Tensor.Zeros(2, -1));
    }

    [TestMethod]
    public void AddingDifferentShapesFails()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => Tensor.Zeros(2, 3) + Tensor.Zeros(3, 2));
        StringAssert.Contains(error.Message, "[2, 3] and [3, 2]");
        Assert.ThrowsExactly<ArgumentException>(() => Tensor.Tokens([1, 2], 2) + Tensor.Tokens([1, 2], 2));
    }

    [TestMethod]
    public void RealAndTokenAccessorsRefuseTheOtherKind()
    {
        Assert.ThrowsExactly<InvalidOperationException>(() => Tensor.Tokens([1, 2], 2).Data);
        Assert.ThrowsExactly<InvalidOperationException>(() => Tensor.Zeros(2).Indices);
    }

    [TestMethod]
    public void ItemNeedsOneRealElement()
    {
        Assert.AreEqual(2.5f, Tensor.FromArray([2.5f]).Item());
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => Tensor.Zeros(2, 2).Item());
        StringAssert.Contains(error.Message, "[2, 2]");
        Assert.ThrowsExactly<ArgumentException>(() => Tensor.Tokens([3]).Item());
    }

    [TestMethod]
    public void PositionsCountAlongTheSequence()
    {
        Tensor positions = Tensor.Tokens([7, 8, 9, 1, 2, 3], 2, 3).Positions();
        Assert.IsTrue(positions.IsTokens);
        CollectionAssert.AreEqual(new[] { 2, 3 }, positions.Shape);
        CollectionAssert.AreEqual(new[] { 0, 1, 2, 0, 1, 2 }, positions.Indices);
        Assert.ThrowsExactly<InvalidOperationException>(() => Tensor.Zeros(2, 3).Positions());
        Assert.ThrowsExactly<InvalidOperationException>(() => Tensor.Tokens([1, 2], 2).Positions());
    }

    [TestMethod]
    public void LayersCheckTheirInputs()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => new Linear(5, 4).Forward(Tensor.Zeros(2, 3, 6)));
        StringAssert.Contains(error.Message, "[2, 3, 6]");
        Assert.ThrowsExactly<ArgumentException>(() => new Embedding(4, 3).Forward(Tensor.Zeros(2)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Embedding(4, 3).Forward(Tensor.Tokens([4], 1)));
        Assert.ThrowsExactly<ArgumentException>(() => new CausalSelfAttention(10, 3));
        Assert.ThrowsExactly<ArgumentException>(() => new CausalSelfAttention(8, 2).Forward(Tensor.Zeros(2, 8)));
        Assert.ThrowsExactly<ArgumentException>(() => Activations.Gelu(Tensor.Tokens([1], 1)));
        var lossError = Assert.ThrowsExactly<ArgumentException>(() =>
            Loss.CrossEntropy(Tensor.Zeros(2, 3, 5), Tensor.Tokens([0, 1, 2], 3)));
        StringAssert.Contains(lossError.Message, "[2, 3, 5]");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            Loss.CrossEntropy(Tensor.Zeros(1, 5), Tensor.Tokens([5], 1)));
    }

    [TestMethod]
    public void OpsRejectSlicesThatAreTooShortOrOutsideTheArena()
    {
        var h = new OpHarness<double>(capacity: 64);
        Slice x = h.Activation(12), w = h.Parameter(new double[6]), y = h.Activation(7);
        var error = Assert.ThrowsExactly<ArgumentException>(() => h.Ops.Linear(x, w, null, y, 4, 3, 2));
        StringAssert.Contains(error.Message, "Linear: y");
        StringAssert.Contains(error.Message, "8 elements needed");

        var outside = new Slice(Arena.Activations, 60, 10);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => h.Ops.Zero(outside));
        Assert.ThrowsExactly<ArgumentException>(() => h.Ops.Load([1.0, 2.0], new Slice(Arena.Activations, 0, 3)));
        Assert.ThrowsExactly<ArgumentException>(() =>
            h.Ops.Attention(h.Activation(18), h.Activation(6), h.Activation(4), 1, 2, 4, 3));
    }

    [TestMethod]
    public void AllocateStartsAtZeroAndPositionsFillIndices()
    {
        var h = new OpHarness<float>(capacity: 16);
        h.Ops.View(Arena.Activations)[3] = 5f;
        h.Ops.Allocate(Arena.Activations, 8);
        CollectionAssert.AreEqual(new float[8], h.Ops.View(Arena.Activations).ToArray());

        IndexSlice positions = h.Indices(new int[6]);
        h.Ops.Positions(positions, 2, 3);
        Slice table = h.Parameter([10, 11, 12]);
        Slice rows = h.Activation(6);
        h.Ops.Embedding(positions, table, rows, 6, 1);
        CollectionAssert.AreEqual(new double[] { 10, 11, 12, 10, 11, 12 }, h.Read(rows));
    }
}
