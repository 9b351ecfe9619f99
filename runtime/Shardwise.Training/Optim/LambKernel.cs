using System;
using Shardwise.Training.Config;

namespace Shardwise.Training.Optim;

/// <summary>
/// One step of DeepSpeed's Lamb (FusedLamb) over the parameter tensors of a flat buffer, each tensor on its own:
///   m = β1·m + (1−β1)·g ;  v = β2·v + (1−β2)·g²
///   update = m / (√v + ε) + wd·p            (√(v + ε) with eps_inside_sqrt; no bias correction inside)
///   coeff = ‖p‖ / ‖update‖ clamped to [min_coeff, max_coeff], 1 where either norm is 0
///   p -= step_size · coeff · update,  step_size = lr·√(1 − β2^t)/(1 − β1^t) (lr without bias correction)
/// The norms are summed in double (FusedLamb sums in fp32 per thread, then across blocks); the update is recomputed
/// from the new moments in the second pass, as FusedLamb's third kernel does. Reference: the float64
/// LambReference in tests/Shardwise.Training.Tests.
/// </summary>
internal static class LambKernel
{
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> expAvg, Span<float> expAvgSq,
        in LambStepScalars s, ReadOnlySpan<Range> tensors)
    {
        foreach (Range tensor in tensors)
        {
            Span<float> p = parameters[tensor], m = expAvg[tensor], v = expAvgSq[tensor];
            ReadOnlySpan<float> g = gradients[tensor];
            double weightSquares = 0, updateSquares = 0;
            for (int i = 0; i < p.Length; i++)
            {
                m[i] = (s.Beta1 * m[i]) + (s.OneMinusBeta1 * g[i]);
                v[i] = (s.Beta2 * v[i]) + (s.OneMinusBeta2 * g[i] * g[i]);
                float update = Update(s, p[i], m[i], v[i]);
                updateSquares += (double)update * update;
                weightSquares += (double)p[i] * p[i];
            }

            float coefficient = TrustRatio(Math.Sqrt(weightSquares), Math.Sqrt(updateSquares), s.MinCoeff, s.MaxCoeff);
            float step = s.StepSize * coefficient;
            for (int i = 0; i < p.Length; i++) p[i] -= step * Update(s, p[i], m[i], v[i]);
        }
    }

    /// <summary>‖w‖/‖u‖ clamped to [min, max]; 1 where either norm is zero (a zero tensor, or no update).</summary>
    public static float TrustRatio(double weightNorm, double updateNorm, float min, float max) =>
        weightNorm == 0 || updateNorm == 0 ? 1f : Math.Clamp((float)(weightNorm / updateNorm), min, max);

    private static float Update(in LambStepScalars s, float p, float m, float v)
    {
        float denominator = s.EpsInsideSqrt ? MathF.Sqrt(v + s.Eps) : MathF.Sqrt(v) + s.Eps;
        return (m / denominator) + (s.WeightDecay * p);
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
