using System;

namespace Shardwise.Distributed.Tests;

/// <summary>Plain reference results, computed from all ranks' inputs the obvious way: rank 0 first, then 1, 2, …</summary>
internal static class Reference
{
    public static float[] Sum(float[][] inputs)
    {
        var sum = (float[])inputs[0].Clone();
        for (int rank = 1; rank < inputs.Length; rank++)
            for (int i = 0; i < sum.Length; i++) sum[i] += inputs[rank][i];
        return sum;
    }

    public static double[] Sum(double[][] inputs)
    {
        var sum = (double[])inputs[0].Clone();
        for (int rank = 1; rank < inputs.Length; rank++)
            for (int i = 0; i < sum.Length; i++) sum[i] += inputs[rank][i];
        return sum;
    }

    public static double[] Max(double[][] inputs)
    {
        var max = (double[])inputs[0].Clone();
        for (int rank = 1; rank < inputs.Length; rank++)
            for (int i = 0; i < max.Length; i++) max[i] = Math.Max(max[i], inputs[rank][i]);
        return max;
    }
}
