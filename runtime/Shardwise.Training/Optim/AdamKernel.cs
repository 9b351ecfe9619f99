using System;
using System.Runtime.Intrinsics;
using Shardwise.Ops;

namespace Shardwise.Training.Optim;

/// <summary>Per-step constants, computed once in double (1−β included) and rounded to float for the element loop.</summary>
internal readonly record struct AdamStepScalars(
    float LearningRate,
    float Beta1,
    float OneMinusBeta1,
    float Beta2,
    float OneMinusBeta2,
    float Eps,
    float WeightDecay,
    bool AdamWMode,
    float InverseBiasCorrection1,
    float InverseBiasCorrection2)
{
    /// <summary>The same scalars for a backend that runs the step itself, with its gradient multiplier.</summary>
    public FusedAdamStep ToFused(float gradientMultiplier) => new(LearningRate, Beta1, OneMinusBeta1, Beta2, OneMinusBeta2,
        Eps, WeightDecay, AdamWMode, InverseBiasCorrection1, InverseBiasCorrection2, gradientMultiplier);

    /// <summary>Lion's scalars for a backend that runs the step itself (Lion reads no ε and no bias correction).</summary>
    public FusedLionStep ToFusedLion(float gradientMultiplier) => new(LearningRate, Beta1, OneMinusBeta1, Beta2, OneMinusBeta2,
        WeightDecay, gradientMultiplier);

    /// <summary>What <see cref="LionKernel"/> reads of <paramref name="step"/>; the fields Lion has no use for are neutral.</summary>
    public static AdamStepScalars FromFused(in FusedLionStep step) => new(step.LearningRate, step.Beta1, step.OneMinusBeta1,
        step.Beta2, step.OneMinusBeta2, Eps: 0f, step.WeightDecay, AdamWMode: true, InverseBiasCorrection1: 1f, InverseBiasCorrection2: 1f);

    /// <summary>Adagrad's scalars for a backend that runs the step itself.</summary>
    public FusedAdagradStep ToFusedAdagrad(float gradientMultiplier) => new(LearningRate, Eps, WeightDecay, gradientMultiplier);

    /// <summary>What <see cref="AdagradKernel"/> reads of <paramref name="step"/>; the fields Adagrad has no use for are neutral.</summary>
    public static AdamStepScalars FromFused(in FusedAdagradStep step) => new(step.LearningRate, Beta1: 0f, OneMinusBeta1: 1f,
        Beta2: 0f, OneMinusBeta2: 1f, step.Eps, step.WeightDecay, AdamWMode: false, InverseBiasCorrection1: 1f, InverseBiasCorrection2: 1f);

    public static AdamStepScalars FromFused(in FusedAdamStep step) => new(step.LearningRate, step.Beta1, step.OneMinusBeta1,
        step.Beta2, step.OneMinusBeta2, step.Eps, step.WeightDecay, step.AdamWMode, step.InverseBiasCorrection1,
        step.InverseBiasCorrection2);
}

/// <summary>
/// The fused Adam update on flat fp32 buffers, the same arithmetic as DeepSpeed's multi_tensor_adam:
///   (L2 mode)    g += wd·p
///   m = β1·m + (1−β1)·g ;  v = β2·v + (1−β2)·g²
///   update = (m/bc1) / (√(v/bc2) + ε)          — ε outside the square root
///   (AdamW mode) update += wd·p                 — decoupled decay, on the pre-update p
///   p -= lr·update
/// The same expression is written for Vector512, Vector256 and a scalar tail, in the same operation
/// order and without FMA, so every width yields bit-identical results (the tests rely on that).
/// </summary>
internal static class AdamKernel
{
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> expAvg, Span<float> expAvgSq, in AdamStepScalars s, SimdWidth width)
    {
        var i = width.Resolve() switch
        {
            SimdWidth.Vector512 => Step512(parameters, gradients, expAvg, expAvgSq, s),
            SimdWidth.Vector256 => Step256(parameters, gradients, expAvg, expAvgSq, s),
            _ => 0,
        };
        StepScalar(parameters, gradients, expAvg, expAvgSq, s, i);
    }

    private static int Step512(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamStepScalars s)
    {
        var lr = Vector512.Create(s.LearningRate);
        var beta1 = Vector512.Create(s.Beta1);
        var oneMinusBeta1 = Vector512.Create(s.OneMinusBeta1);
        var beta2 = Vector512.Create(s.Beta2);
        var oneMinusBeta2 = Vector512.Create(s.OneMinusBeta2);
        var eps = Vector512.Create(s.Eps);
        var decay = Vector512.Create(s.WeightDecay);
        var invBc1 = Vector512.Create(s.InverseBiasCorrection1);
        var invBc2 = Vector512.Create(s.InverseBiasCorrection2);
        var l2 = !s.AdamWMode && s.WeightDecay != 0f;
        var decoupled = s.AdamWMode && s.WeightDecay != 0f;
        var count = Vector512<float>.Count;
        var i = 0;
        for (; i <= p.Length - count; i += count)
        {
            var param = Vector512.Create<float>(p[i..]);
            var grad = Vector512.Create(g[i..]);
            if (l2)
            {
                grad += decay * param;
            }

            var mi = (beta1 * Vector512.Create<float>(m[i..])) + (oneMinusBeta1 * grad);
            var vi = (beta2 * Vector512.Create<float>(v[i..])) + (oneMinusBeta2 * grad * grad);
            var update = (mi * invBc1) / (Vector512.Sqrt(vi * invBc2) + eps);
            if (decoupled)
            {
                update += decay * param;
            }

            mi.CopyTo(m[i..]);
            vi.CopyTo(v[i..]);
            (param - (lr * update)).CopyTo(p[i..]);
        }

        return i;
    }

    private static int Step256(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamStepScalars s)
    {
        var lr = Vector256.Create(s.LearningRate);
        var beta1 = Vector256.Create(s.Beta1);
        var oneMinusBeta1 = Vector256.Create(s.OneMinusBeta1);
        var beta2 = Vector256.Create(s.Beta2);
        var oneMinusBeta2 = Vector256.Create(s.OneMinusBeta2);
        var eps = Vector256.Create(s.Eps);
        var decay = Vector256.Create(s.WeightDecay);
        var invBc1 = Vector256.Create(s.InverseBiasCorrection1);
        var invBc2 = Vector256.Create(s.InverseBiasCorrection2);
        var l2 = !s.AdamWMode && s.WeightDecay != 0f;
        var decoupled = s.AdamWMode && s.WeightDecay != 0f;
        var count = Vector256<float>.Count;
        var i = 0;
        for (; i <= p.Length - count; i += count)
        {
            var param = Vector256.Create<float>(p[i..]);
            var grad = Vector256.Create(g[i..]);
            if (l2)
            {
                grad += decay * param;
            }

            var mi = (beta1 * Vector256.Create<float>(m[i..])) + (oneMinusBeta1 * grad);
            var vi = (beta2 * Vector256.Create<float>(v[i..])) + (oneMinusBeta2 * grad * grad);
            var update = (mi * invBc1) / (Vector256.Sqrt(vi * invBc2) + eps);
            if (decoupled)
            {
                update += decay * param;
            }

            mi.CopyTo(m[i..]);
            vi.CopyTo(v[i..]);
            (param - (lr * update)).CopyTo(p[i..]);
        }

        return i;
    }

    private static void StepScalar(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamStepScalars s, int start)
    {
        var oneMinusBeta1 = s.OneMinusBeta1;
        var oneMinusBeta2 = s.OneMinusBeta2;
        var l2 = !s.AdamWMode && s.WeightDecay != 0f;
        var decoupled = s.AdamWMode && s.WeightDecay != 0f;
        for (var i = start; i < p.Length; i++)
        {
            var param = p[i];
            var grad = g[i];
            if (l2)
            {
                grad += s.WeightDecay * param;
            }

            var mi = (s.Beta1 * m[i]) + (oneMinusBeta1 * grad);
            var vi = (s.Beta2 * v[i]) + (oneMinusBeta2 * grad * grad);
            var update = (mi * s.InverseBiasCorrection1) / (MathF.Sqrt(vi * s.InverseBiasCorrection2) + s.Eps);
            if (decoupled)
            {
                update += s.WeightDecay * param;
            }

            m[i] = mi;
            v[i] = vi;
            p[i] = param - (s.LearningRate * update);
        }
    }
}
