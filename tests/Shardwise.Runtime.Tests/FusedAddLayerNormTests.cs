using System;
using System.Numerics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;

namespace Shardwise.Runtime.Tests;

/// <summary>
/// CpuOps.AddLayerNorm is bitwise Add then LayerNorm of the sum, in float and double, with the sum in a buffer of its
/// own or in place of either operand (an in-place residual stream). (Its gradients against finite differences:
/// <see cref="GradientTests"/>, case AddLayerNorm.)
/// </summary>
[TestClass]
public sealed class FusedAddLayerNormTests
{
    public enum SumIn { OwnBuffer, A, B }

    public static System.Collections.Generic.IEnumerable<object[]> Cases()
    {
        foreach (SumIn where in new[] { SumIn.OwnBuffer, SumIn.A, SumIn.B })
        {
            yield return [1, 5, where];
            yield return [7, 33, where];
            yield return [300, 130, where]; // 39,000 elements: large enough for CpuOps' parallel paths
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void AddLayerNormIsAddThenLayerNorm(int rows, int dim, SumIn where)
    {
        Check<float>(rows, dim, where);
        Check<double>(rows, dim, where);
    }

    private static void Check<T>(int rows, int dim, SumIn where) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // Two backends with identical contents: one runs the fused call, the other the unfused sequence.
        var fused = new SeededCpuOps<T>(seed: rows + dim);
        var unfused = new SeededCpuOps<T>(seed: rows + dim);
        long n = (long)rows * dim;
        Slice a = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(n, 3)), b = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(n));
        Slice gamma = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(dim)), beta = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(dim));
        Slice own = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(n));
        Slice y = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(n)), mean = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(rows)), rstd = SeededCpuOps<T>.Both(fused, unfused, s => s.Random(rows));
        Slice sum = where switch { SumIn.A => a, SumIn.B => b, _ => own };
        double[] staleY = fused.Read(y), staleSum = fused.Read(sum);

        fused.Ops.AddLayerNorm(a, b, sum, gamma, beta, y, mean, rstd, rows, dim);
        unfused.Ops.Add(a, b, sum, n);
        unfused.Ops.LayerNorm(sum, gamma, beta, y, mean, rstd, rows, dim);

        string at = $"{typeof(T).Name} {rows}×{dim}, sum in {where}";
        CollectionAssert.AreEqual(unfused.Read(sum), fused.Read(sum), $"sum, {at}");
        CollectionAssert.AreEqual(unfused.Read(y), fused.Read(y), $"y, {at}");
        CollectionAssert.AreEqual(unfused.Read(mean), fused.Read(mean), $"mean, {at}");
        CollectionAssert.AreEqual(unfused.Read(rstd), fused.Read(rstd), $"rstd, {at}");
        CollectionAssert.AreEqual(unfused.Read(unfused.Everything), fused.Read(fused.Everything), $"every slice handed out, {at}");
        CollectionAssert.AreNotEqual(staleSum, fused.Read(sum), $"{at}: the sum was written");
        CollectionAssert.AreNotEqual(staleY, fused.Read(y), $"{at}: y was written");
    }
}
