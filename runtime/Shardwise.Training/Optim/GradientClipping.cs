using System;
using System.Runtime.Intrinsics;

namespace Shardwise.Training.Optim;

/// <summary>
/// Global-norm gradient clipping as DeepSpeed does it (clip_grad_norm_): coefficient = clip / (norm + 1e-6),
/// applied only when it is below 1 — i.e. when the norm exceeds the threshold. The 1e-6 keeps the
/// division finite for zero gradients and means a clipped gradient ends just under the threshold.
/// Squares are accumulated in double so the norm of millions of elements does not lose precision.
/// </summary>
public static class GradientClipping
{
    public const double Epsilon = 1e-6;

    /// <summary>Sum of squares of one buffer; add these up across buffers or ranks, then take the square root.</summary>
    public static double SumOfSquares(ReadOnlySpan<float> values) => SumOfSquares(values, SimdWidth.Auto);

    public static double GlobalNorm(ReadOnlySpan<float> gradients) => Math.Sqrt(SumOfSquares(gradients));

    /// <summary>The factor to multiply gradients by: 1 when no clipping is due or clipping is off (maxNorm ≤ 0).</summary>
    public static double ClipCoefficient(double globalNorm, double maxNorm)
    {
        if (maxNorm <= 0)
        {
            return 1.0;
        }

        // A NaN/Inf norm gives a NaN/0 coefficient; the NaN compares false and leaves the gradients for
        // the overflow check to reject, as in DeepSpeed.
        var coefficient = maxNorm / (globalNorm + Epsilon);
        return coefficient < 1.0 ? coefficient : 1.0;
    }

    /// <summary>Clips <paramref name="gradients"/> in place and returns their global norm before clipping.</summary>
    public static double ClipByGlobalNorm(Span<float> gradients, double maxNorm)
    {
        var norm = GlobalNorm(gradients);
        var coefficient = ClipCoefficient(norm, maxNorm);
        if (coefficient != 1.0)
        {
            Scale(gradients, (float)coefficient);
        }

        return norm;
    }

    public static void Scale(Span<float> values, float factor) => Scale(values, factor, SimdWidth.Auto);

    internal static double SumOfSquares(ReadOnlySpan<float> values, SimdWidth width)
    {
        var i = 0;
        var sum = 0.0;
        switch (width.Resolve())
        {
            case SimdWidth.Vector512:
                var acc512 = Vector512<double>.Zero;
                for (; i <= values.Length - Vector512<float>.Count; i += Vector512<float>.Count)
                {
                    var (lower, upper) = Vector512.Widen(Vector512.Create(values[i..]));
                    acc512 += (lower * lower) + (upper * upper);
                }

                sum = Vector512.Sum(acc512);
                break;
            case SimdWidth.Vector256:
                var acc256 = Vector256<double>.Zero;
                for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
                {
                    var (lower, upper) = Vector256.Widen(Vector256.Create(values[i..]));
                    acc256 += (lower * lower) + (upper * upper);
                }

                sum = Vector256.Sum(acc256);
                break;
        }

        for (; i < values.Length; i++)
        {
            double x = values[i];
            sum += x * x;
        }

        return sum;
    }

    internal static void Scale(Span<float> values, float factor, SimdWidth width)
    {
        var i = 0;
        switch (width.Resolve())
        {
            case SimdWidth.Vector512:
                var f512 = Vector512.Create(factor);
                for (; i <= values.Length - Vector512<float>.Count; i += Vector512<float>.Count)
                {
                    (Vector512.Create<float>(values[i..]) * f512).CopyTo(values[i..]);
                }

                break;
            case SimdWidth.Vector256:
                var f256 = Vector256.Create(factor);
                for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
                {
                    (Vector256.Create<float>(values[i..]) * f256).CopyTo(values[i..]);
                }

                break;
        }

        for (; i < values.Length; i++)
        {
            values[i] *= factor;
        }
    }
}
