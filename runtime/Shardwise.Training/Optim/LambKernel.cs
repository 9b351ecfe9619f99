using System;
using System.Runtime.Intrinsics;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// One step of DeepSpeed's Lamb (FusedLamb) over the parameter tensors of a flat buffer, each tensor on its own:
///   m = β1·m + (1−β1)·g ;  v = β2·v + (1−β2)·g²
///   update = m / (√v + ε) + wd·p            (√(v + ε) with eps_inside_sqrt; no bias correction inside)
///   coeff = ‖p‖ / ‖update‖ clamped to [min_coeff, max_coeff], 1 where either norm is 0
///   p -= step_size · coeff · update,  step_size = lr·√(1 − β2^t)/(1 − β1^t) (lr without bias correction)
/// The norms are summed in double (FusedLamb sums in fp32 per thread, then across blocks); the update is recomputed
/// from the new moments in the second pass, as FusedLamb's third kernel does. 256-bit vectors where the CPU has them,
/// with the scalar arithmetic per element. Reference: the float64
/// LambReference in tests/Shardwise.Training.Tests.
/// </summary>
internal static class LambKernel
{
    /// <param name="trustRatios">Empty, or one element per tensor: receives each tensor's clamped trust ratio.</param>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> expAvg, Span<float> expAvgSq,
        in LambStepScalars s, ReadOnlySpan<Range> tensors, Span<float> trustRatios = default)
    {
        for (int t = 0; t < tensors.Length; t++)
        {
            Range tensor = tensors[t];
            Span<float> p = parameters[tensor], m = expAvg[tensor], v = expAvgSq[tensor];
            ReadOnlySpan<float> g = gradients[tensor];
            var (weightSquares, updateSquares) = Moments(p, g, m, v, s);
            float coefficient = TrustRatio(Math.Sqrt(weightSquares), Math.Sqrt(updateSquares), s.MinCoeff, s.MaxCoeff);
            if (!trustRatios.IsEmpty) trustRatios[t] = coefficient;
            Apply(p, m, v, s, s.StepSize * coefficient);
        }
    }

    /// <summary>‖w‖/‖u‖ clamped to [min, max]; 1 where either norm is zero (a zero tensor, or no update).</summary>
    public static float TrustRatio(double weightNorm, double updateNorm, float min, float max) =>
        weightNorm == 0 || updateNorm == 0 ? 1f : Math.Clamp((float)(weightNorm / updateNorm), min, max);

    /// <summary>
    /// Updates one tensor's moments and returns (Σp², Σupdate²) in double: eight lanes of 256-bit vectors, each lane's
    /// squares widened to double and summed in a fixed order, then the scalar tail (the same arithmetic per element).
    /// </summary>
    private static (double Weights, double Updates) Moments(ReadOnlySpan<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v,
        in LambStepScalars s)
    {
        int i = 0;
        double weights = 0, updates = 0;
        if (Vector256.IsHardwareAccelerated && p.Length >= Vector256<float>.Count)
        {
            var constants = new VectorConstants(s);
            Vector256<double> weightsLow = Vector256<double>.Zero, weightsHigh = Vector256<double>.Zero;
            Vector256<double> updatesLow = Vector256<double>.Zero, updatesHigh = Vector256<double>.Zero;
            for (; i <= p.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256<float> gradient = Vector256.Create(g[i..]), weight = Vector256.Create(p[i..]);
                Vector256<float> first = (constants.Beta1 * Vector256.Create(m[i..])) + (constants.OneMinusBeta1 * gradient);
                Vector256<float> second = (constants.Beta2 * Vector256.Create(v[i..])) + (constants.OneMinusBeta2 * gradient * gradient);
                first.CopyTo(m[i..]);
                second.CopyTo(v[i..]);
                Vector256<float> update = constants.Update(first, second, weight);
                var (updateLow, updateHigh) = Vector256.Widen(update);
                var (weightLow, weightHigh) = Vector256.Widen(weight);
                updatesLow += updateLow * updateLow;
                updatesHigh += updateHigh * updateHigh;
                weightsLow += weightLow * weightLow;
                weightsHigh += weightHigh * weightHigh;
            }

            weights = Vector256.Sum(weightsLow) + Vector256.Sum(weightsHigh);
            updates = Vector256.Sum(updatesLow) + Vector256.Sum(updatesHigh);
        }

        for (; i < p.Length; i++)
        {
            m[i] = (s.Beta1 * m[i]) + (s.OneMinusBeta1 * g[i]);
            v[i] = (s.Beta2 * v[i]) + (s.OneMinusBeta2 * g[i] * g[i]);
            float update = Update(s, p[i], m[i], v[i]);
            updates += (double)update * update;
            weights += (double)p[i] * p[i];
        }

        return (weights, updates);
    }

    /// <summary>p −= step · update, the update recomputed from the new moments (vectors, then the scalar tail).</summary>
    private static void Apply(Span<float> p, ReadOnlySpan<float> m, ReadOnlySpan<float> v, in LambStepScalars s, float step)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated && p.Length >= Vector256<float>.Count)
        {
            var constants = new VectorConstants(s);
            var stepVector = Vector256.Create(step);
            for (; i <= p.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256<float> weight = Vector256.Create(p[i..]);
                (weight - (stepVector * constants.Update(Vector256.Create(m[i..]), Vector256.Create(v[i..]), weight))).CopyTo(p[i..]);
            }
        }

        for (; i < p.Length; i++) p[i] -= step * Update(s, p[i], m[i], v[i]);
    }

    private static float Update(in LambStepScalars s, float p, float m, float v)
    {
        float denominator = s.EpsInsideSqrt ? MathF.Sqrt(v + s.Eps) : MathF.Sqrt(v) + s.Eps;
        return (m / denominator) + (s.WeightDecay * p);
    }

    /// <summary>The scalars as vectors, and the update in the same operation order as the scalar one (no FMA).</summary>
    private readonly struct VectorConstants(in LambStepScalars s)
    {
        public readonly Vector256<float> Beta1 = Vector256.Create(s.Beta1), OneMinusBeta1 = Vector256.Create(s.OneMinusBeta1);
        public readonly Vector256<float> Beta2 = Vector256.Create(s.Beta2), OneMinusBeta2 = Vector256.Create(s.OneMinusBeta2);
        private readonly Vector256<float> eps = Vector256.Create(s.Eps), decay = Vector256.Create(s.WeightDecay);
        private readonly bool epsInsideSqrt = s.EpsInsideSqrt;

        public Vector256<float> Update(Vector256<float> m, Vector256<float> v, Vector256<float> p)
        {
            Vector256<float> denominator = epsInsideSqrt ? Vector256.Sqrt(v + eps) : Vector256.Sqrt(v) + eps;
            return (m / denominator) + (decay * p);
        }
    }
}

/// <summary>The per-step scalars of <see cref="LambKernel"/>.</summary>
internal readonly record struct LambStepScalars(float StepSize, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2,
    float Eps, bool EpsInsideSqrt, float WeightDecay, float MinCoeff, float MaxCoeff)
{
    /// <summary>Step <paramref name="step"/> (1-based) at <paramref name="learningRate"/>; the bias corrections in double.</summary>
    public static LambStepScalars For(long step, double learningRate, double beta1, double beta2, double eps, double weightDecay,
        bool biasCorrection, LambConfig lamb)
    {
        double stepSize = biasCorrection
            ? learningRate * Math.Sqrt(1.0 - Math.Pow(beta2, step)) / (1.0 - Math.Pow(beta1, step))
            : learningRate;
        return new LambStepScalars((float)stepSize, (float)beta1, (float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2),
            (float)eps, lamb.EpsInsideSqrt, (float)weightDecay, (float)lamb.MinCoeff, (float)lamb.MaxCoeff);
    }
}
