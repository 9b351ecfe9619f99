using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Plans;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>Where each tensor rank's piece of a parameter lies: hand-checked small cases, then round trips on random data.</summary>
[TestClass]
public sealed class TensorSplitMappingTests
{
    // A [6, 2] tensor holding 0..11: row r is (2r, 2r + 1).
    private static readonly float[] Six = Enumerable.Range(0, 12).Select(i => (float)i).ToArray();

    [TestMethod]
    public void RowsInThreeGroupsKeepPartROfEveryGroup()
    {
        // Groups of two rows (q, k, v); rank 1 of t = 2 keeps the second row of each: rows 1, 3, 5.
        var local = new float[6];
        TensorSplitMapping.Extract(Six, [6, 2], new TensorSplit(SplitAxis.Rows, 3), rank: 1, tensor: 2, local);
        CollectionAssert.AreEqual(new float[] { 2, 3, 6, 7, 10, 11 }, local);
        CollectionAssert.AreEqual(new[] { 3, 2 }, TensorSplitMapping.LocalShape([6, 2], new TensorSplit(SplitAxis.Rows, 3), 2));
    }

    [TestMethod]
    public void RowsInOneGroupAreContiguousBlocks()
    {
        var local = new float[4];
        TensorSplitMapping.Extract(Six, [6, 2], new TensorSplit(SplitAxis.Rows, 1), rank: 2, tensor: 3, local);
        CollectionAssert.AreEqual(new float[] { 8, 9, 10, 11 }, local);
    }

    [TestMethod]
    public void ColumnsKeepASliceOfEveryRow()
    {
        // [2, 6] holding 0..11; rank 1 of t = 3 keeps columns 2 and 3.
        var local = new float[4];
        TensorSplitMapping.Extract(Six, [2, 6], new TensorSplit(SplitAxis.Columns, 1), rank: 1, tensor: 3, local);
        CollectionAssert.AreEqual(new float[] { 2, 3, 8, 9 }, local);
        CollectionAssert.AreEqual(new[] { 2, 2 }, TensorSplitMapping.LocalShape([2, 6], new TensorSplit(SplitAxis.Columns, 1), 3));
    }

    [TestMethod]
    public void ReplicatedIsAWholeCopy()
    {
        var local = new float[12];
        TensorSplitMapping.Extract(Six, [6, 2], TensorSplit.Replicated, rank: 1, tensor: 2, local);
        CollectionAssert.AreEqual(Six, local);
    }

    [TestMethod]
    [DataRow(SplitAxis.Rows, 1, 4)]
    [DataRow(SplitAxis.Rows, 3, 2)]
    [DataRow(SplitAxis.Columns, 1, 4)]
    [DataRow(SplitAxis.Rows, 2, 1)]
    public void EveryRanksPieceInsertedBackRebuildsTheTensor(SplitAxis axis, int groups, int tensor)
    {
        int[] shape = [24, 8];
        var random = new Random(7);
        var full = Enumerable.Range(0, 24 * 8).Select(_ => (float)random.NextDouble()).ToArray();
        var split = new TensorSplit(axis, groups);
        var rebuilt = new float[full.Length];
        var seen = new int[full.Length];
        for (int rank = 0; rank < tensor; rank++)
        {
            var local = new float[full.Length / tensor];
            TensorSplitMapping.Extract(full, shape, split, rank, tensor, local);
            TensorSplitMapping.Insert(local, shape, split, rank, tensor, rebuilt);
            // Each element belongs to exactly one rank: mark the ones this rank's piece covers.
            var marks = new float[full.Length];
            TensorSplitMapping.Insert(Enumerable.Repeat(1f, local.Length).ToArray(), shape, split, rank, tensor, marks);
            for (int i = 0; i < marks.Length; i++) seen[i] += (int)marks[i];
        }
        CollectionAssert.AreEqual(full, rebuilt);
        CollectionAssert.AreEqual(Enumerable.Repeat(1, full.Length).ToArray(), seen, "the pieces must tile the tensor");
    }

    [TestMethod]
    public void ShapesThatDoNotDivideAreRefusedNamingTheSplit()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() =>
            TensorSplitMapping.Extract(Six, [6, 2], new TensorSplit(SplitAxis.Rows, 3), 0, 4, new float[3]));
        StringAssert.Contains(error.Message, "a [6, 2] tensor split rows in 3 groups over 4 ranks: 6 rows are not divisible by 3 groups × 4 ranks");
        Assert.ThrowsExactly<ArgumentException>(() =>
            TensorSplitMapping.Extract(Six, [12], new TensorSplit(SplitAxis.Columns, 1), 0, 2, new float[6]));
    }
}
