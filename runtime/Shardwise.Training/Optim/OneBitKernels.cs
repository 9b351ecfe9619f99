using System;
using System.Runtime.Intrinsics;

namespace Shardwise.Training.Optim;

/// <summary>
/// The element-wise passes of the 1-bit optimizers' own steps (<see cref="OneBitAdam"/>, <see cref="OneBitLamb"/>,
/// <see cref="ZeroOneAdam"/>): eight values per 256-bit vector where the CPU has them, then the scalar tail, with the
/// same arithmetic per element either way (no fused multiply-add), so the vectors change the speed, never the values.
/// </summary>
internal static class OneBitKernels
{
    /// <summary>m = β1·m + (1 − β1)·g.</summary>
    public static void FoldMomentum(Span<float> m, ReadOnlySpan<float> g, float beta1, float oneMinusBeta1)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var b1 = Vector256.Create(beta1);
            var c1 = Vector256.Create(oneMinusBeta1);
            for (; i <= m.Length - 8; i += 8)
                ((b1 * Vector256.Create(m.Slice(i, 8))) + (c1 * Vector256.Create(g.Slice(i, 8)))).CopyTo(m.Slice(i, 8));
        }
        for (; i < m.Length; i++) m[i] = beta1 * m[i] + oneMinusBeta1 * g[i];
    }

    /// <summary>
    /// p −= lr·(m/(√v + ε) + wd·p), Adam's update without bias correction; where <paramref name="accumulated"/> is given,
    /// the same step is subtracted from it too (0/1 Adam's record of its local updates).
    /// </summary>
    public static void ApplyUpdate(Span<float> p, ReadOnlySpan<float> m, ReadOnlySpan<float> v, float learningRate, float eps, float weightDecay,
        Span<float> accumulated = default)
    {
        bool accumulate = !accumulated.IsEmpty;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var (lr, e, wd) = (Vector256.Create(learningRate), Vector256.Create(eps), Vector256.Create(weightDecay));
            for (; i <= p.Length - 8; i += 8)
            {
                var weight = Vector256.Create(p.Slice(i, 8));
                var update = (Vector256.Create(m.Slice(i, 8)) / (Vector256.Sqrt(Vector256.Create(v.Slice(i, 8))) + e)) + (wd * weight);
                var step = lr * update;
                (weight - step).CopyTo(p.Slice(i, 8));
                if (accumulate) (Vector256.Create(accumulated.Slice(i, 8)) - step).CopyTo(accumulated.Slice(i, 8));
            }
        }
        for (; i < p.Length; i++)
        {
            float step = learningRate * (m[i] / (MathF.Sqrt(v[i]) + eps) + weightDecay * p[i]);
            p[i] -= step;
            if (accumulate) accumulated[i] -= step;
        }
    }

    /// <summary>
    /// 1-bit Lamb's compressed-stage pass over one tensor: the gradient rebuilt from the averaged momentum,
    /// g = (m − β1·m_last)/(1 − β1), folded into the fresh variance; returns max (√v + ε)/(√v′ + ε) and, in double, Σ
    /// update² and Σ (m/(√v + ε))². The sums run in four lanes (element i into lane i mod 4), then the tail.
    /// </summary>
    public static (double MaxRatio, double UpdateSquares, double PreliminarySquares) RefreshFreshVariance(ReadOnlySpan<float> p,
        ReadOnlySpan<float> m, ReadOnlySpan<float> lastM, ReadOnlySpan<float> v, Span<float> fresh,
        float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float eps, float weightDecay)
    {
        int i = 0;
        float maxRatio = float.NegativeInfinity;
        double updates = 0, preliminaries = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var (b1, c1, b2, c2) = (Vector256.Create(beta1), Vector256.Create(oneMinusBeta1), Vector256.Create(beta2), Vector256.Create(oneMinusBeta2));
            var (e, wd) = (Vector256.Create(eps), Vector256.Create(weightDecay));
            var maxRatios = Vector256.Create(float.NegativeInfinity);
            Vector256<double> updateSums = Vector256<double>.Zero, preliminarySums = Vector256<double>.Zero;
            for (; i <= p.Length - 8; i += 8)
            {
                var momentum = Vector256.Create(m.Slice(i, 8));
                var gradient = (momentum - (Vector256.Create(lastM.Slice(i, 8)) * b1)) / c1;
                var freshVariance = (b2 * Vector256.Create(fresh.Slice(i, 8))) + (c2 * gradient * gradient);
                freshVariance.CopyTo(fresh.Slice(i, 8));
                var denominator = Vector256.Sqrt(Vector256.Create(v.Slice(i, 8))) + e;
                var preliminary = momentum / denominator;
                var update = preliminary + (wd * Vector256.Create(p.Slice(i, 8)));
                maxRatios = Vector256.Max(maxRatios, denominator / (Vector256.Sqrt(freshVariance) + e));
                var (updateLow, updateHigh) = (Vector256.WidenLower(update), Vector256.WidenUpper(update));
                var (preliminaryLow, preliminaryHigh) = (Vector256.WidenLower(preliminary), Vector256.WidenUpper(preliminary));
                updateSums += updateLow * updateLow;
                updateSums += updateHigh * updateHigh;
                preliminarySums += preliminaryLow * preliminaryLow;
                preliminarySums += preliminaryHigh * preliminaryHigh;
            }
            for (int k = 0; k < 8; k++) maxRatio = MathF.Max(maxRatio, maxRatios[k]);
            updates = (updateSums[0] + updateSums[1]) + (updateSums[2] + updateSums[3]);
            preliminaries = (preliminarySums[0] + preliminarySums[1]) + (preliminarySums[2] + preliminarySums[3]);
        }
        for (; i < p.Length; i++)
        {
            float gradient = (m[i] - lastM[i] * beta1) / oneMinusBeta1;
            fresh[i] = beta2 * fresh[i] + oneMinusBeta2 * gradient * gradient;
            float denominator = MathF.Sqrt(v[i]) + eps;
            float preliminary = m[i] / denominator;
            float update = preliminary + weightDecay * p[i];
            preliminaries += (double)preliminary * preliminary;
            updates += (double)update * update;
            maxRatio = MathF.Max(maxRatio, denominator / (MathF.Sqrt(fresh[i]) + eps));
        }
        return (maxRatio, updates, preliminaries);
    }

    /// <summary>0/1 Adam's synchronisation, first half: p −= u (the local updates undone), u ·= √v + ε (momentum units).</summary>
    public static void UndoLocalUpdates(Span<float> p, Span<float> u, ReadOnlySpan<float> v, float eps)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var e = Vector256.Create(eps);
            for (; i <= p.Length - 8; i += 8)
            {
                var accumulated = Vector256.Create(u.Slice(i, 8));
                (Vector256.Create(p.Slice(i, 8)) - accumulated).CopyTo(p.Slice(i, 8));
                (accumulated * (Vector256.Sqrt(Vector256.Create(v.Slice(i, 8))) + e)).CopyTo(u.Slice(i, 8));
            }
        }
        for (; i < p.Length; i++)
        {
            p[i] -= u[i];
            u[i] *= MathF.Sqrt(v[i]) + eps;
        }
    }

    /// <summary>
    /// Second half, with u the ranks' average: m = −(u / Σlr) (0 where Σlr is 0), p += u/(√v + ε), u = 0.
    /// </summary>
    public static void ApplyAveragedUpdates(Span<float> p, Span<float> m, Span<float> u, ReadOnlySpan<float> v, float eps, float learningRateSum)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated && learningRateSum != 0)
        {
            var (e, sum) = (Vector256.Create(eps), Vector256.Create(learningRateSum));
            for (; i <= p.Length - 8; i += 8)
            {
                var average = Vector256.Create(u.Slice(i, 8));
                (-(average / sum)).CopyTo(m.Slice(i, 8));
                (Vector256.Create(p.Slice(i, 8)) + (average / (Vector256.Sqrt(Vector256.Create(v.Slice(i, 8))) + e))).CopyTo(p.Slice(i, 8));
            }
        }
        for (; i < p.Length; i++)
        {
            m[i] = learningRateSum == 0 ? 0f : -(u[i] / learningRateSum);
            p[i] += u[i] / (MathF.Sqrt(v[i]) + eps);
        }
        u.Clear();
    }
}
