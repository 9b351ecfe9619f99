using System;

namespace Shardwise.Training.Tests;

/// <summary>
/// DeepSpeed's FusedLamb written out plainly in double precision, per parameter tensor, independent of the kernel
/// under test: moments without bias correction, update = m/(√v + ε) + wd·p (√(v + ε) with epsInsideSqrt), trust ratio
/// ‖p‖/‖update‖ clamped to [minCoeff, maxCoeff] (1 where a norm is 0), step lr·√(1 − β2^t)/(1 − β1^t).
/// </summary>
internal sealed class LambReference(int length, double beta1, double beta2, double eps, double weightDecay, bool biasCorrection,
    double minCoeff, double maxCoeff, bool epsInsideSqrt)
{
    public double[] M { get; } = new double[length];

    public double[] V { get; } = new double[length];

    public int StepCount { get; private set; }

    /// <summary>The trust ratio of each tensor in the last step.</summary>
    public double[] LastCoefficients { get; private set; } = [];

    public void Step(double[] p, double[] g, double lr, Range[] tensors)
    {
        StepCount++;
        double stepSize = biasCorrection ? lr * Math.Sqrt(1 - Math.Pow(beta2, StepCount)) / (1 - Math.Pow(beta1, StepCount)) : lr;
        LastCoefficients = new double[tensors.Length];
        for (int t = 0; t < tensors.Length; t++)
        {
            var (start, count) = tensors[t].GetOffsetAndLength(p.Length);
            var update = new double[count];
            double weightSquares = 0, updateSquares = 0;
            for (int k = 0; k < count; k++)
            {
                int i = start + k;
                M[i] = (beta1 * M[i]) + ((1 - beta1) * g[i]);
                V[i] = (beta2 * V[i]) + ((1 - beta2) * g[i] * g[i]);
                double denominator = epsInsideSqrt ? Math.Sqrt(V[i] + eps) : Math.Sqrt(V[i]) + eps;
                update[k] = (M[i] / denominator) + (weightDecay * p[i]);
                weightSquares += p[i] * p[i];
                updateSquares += update[k] * update[k];
            }

            double coefficient = weightSquares == 0 || updateSquares == 0
                ? 1
                : Math.Clamp(Math.Sqrt(weightSquares) / Math.Sqrt(updateSquares), minCoeff, maxCoeff);
            LastCoefficients[t] = coefficient;
            for (int k = 0; k < count; k++) p[start + k] -= stepSize * coefficient * update[k];
        }
    }
}
