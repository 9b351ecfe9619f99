using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Tests;

/// <summary>
/// MagnitudeMask.KeepLargest (the TopKBinarizer behind l1 and topk masks) against its definition: sort by score
/// descending, ties by index, keep the first ⌈ratio·n⌉; on random scores with many ties, at many sizes and ratios.
/// </summary>
[TestClass]
public sealed class TopKMaskTests
{
    private static byte[] BySorting(float[] scores, double ratio)
    {
        int kept = MagnitudeMask.Kept(scores.Length, ratio);
        var mask = new byte[scores.Length];
        foreach (int i in Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(kept)) mask[i] = 1;
        return mask;
    }

    [TestMethod]
    public void SelectionKeepsWhatSortingKeeps()
    {
        var random = new Random(3);
        foreach (int n in new[] { 1, 2, 3, 7, 64, 257, 5000 })
        foreach (int distinct in new[] { 2, 5, 1000 })
        foreach (double ratio in new[] { 0.01, 0.25, 0.5, 0.75, 1.0 })
        {
            float[] scores = Enumerable.Range(0, n).Select(_ => (float)random.Next(distinct) - distinct / 2f).ToArray();
            CollectionAssert.AreEqual(BySorting(scores, ratio), MagnitudeMask.KeepLargest(scores, ratio), $"n {n}, {distinct} distinct values, ratio {ratio}");
        }
    }
}
