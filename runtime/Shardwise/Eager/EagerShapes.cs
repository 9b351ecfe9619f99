using System;

namespace Shardwise;

/// <summary>Shape checks shared by the eager layers, so every misuse reports the shapes involved.</summary>
internal static class EagerShapes
{
    /// <summary>The number of rows of a real tensor whose last dimension must be <paramref name="lastDim"/>.</summary>
    public static int RowsOver(Tensor x, int lastDim, string operation)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.RealData(operation);
        if (x.Rank == 0 || x.Shape[^1] != lastDim)
        {
            throw new ArgumentException(
                $"{operation} needs a last dimension of {lastDim}, but got shape {Tensor.Describe(x.Shape)}.");
        }

        return x.Count / Math.Max(1, lastDim);
    }

    /// <summary><paramref name="shape"/> with its last dimension replaced by <paramref name="lastDim"/>.</summary>
    public static int[] WithLast(int[] shape, int lastDim)
    {
        var result = (int[])shape.Clone();
        result[^1] = lastDim;
        return result;
    }

    /// <summary><paramref name="shape"/> with <paramref name="lastDim"/> appended.</summary>
    public static int[] Appended(int[] shape, int lastDim)
    {
        var result = new int[shape.Length + 1];
        shape.CopyTo(result, 0);
        result[^1] = lastDim;
        return result;
    }

    public static void RequirePositive(int value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
    }
}
