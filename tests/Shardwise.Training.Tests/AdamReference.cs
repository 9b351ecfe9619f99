using System;

namespace Shardwise.Training.Tests;

/// <summary>Adam/AdamW written out plainly in double precision, independent of the kernel under test.</summary>
internal sealed class AdamReference(int length, double beta1, double beta2, double eps, double weightDecay, bool adamWMode, bool biasCorrection)
{
    private readonly double beta1 = beta1, beta2 = beta2;

    public double[] M { get; } = new double[length];

    public double[] V { get; } = new double[length];

    public int StepCount { get; private set; }

    /// <summary>One step; <paramref name="betas"/> replaces the constructor's (β1, β2) for this step only.</summary>
    public void Step(double[] p, double[] g, double lr, (double Beta1, double Beta2)? betas = null)
    {
        StepCount++;
        var (beta1, beta2) = betas ?? (this.beta1, this.beta2);
        var bc1 = biasCorrection ? 1 - Math.Pow(beta1, StepCount) : 1;
        var bc2 = biasCorrection ? 1 - Math.Pow(beta2, StepCount) : 1;
        for (var i = 0; i < p.Length; i++)
        {
            var grad = adamWMode ? g[i] : g[i] + (weightDecay * p[i]);
            M[i] = (beta1 * M[i]) + ((1 - beta1) * grad);
            V[i] = (beta2 * V[i]) + ((1 - beta2) * grad * grad);
            var mHat = M[i] / bc1;
            var vHat = V[i] / bc2;
            var update = mHat / (Math.Sqrt(vHat) + eps);
            if (adamWMode)
            {
                update += weightDecay * p[i];
            }

            p[i] -= lr * update;
        }
    }
}
