using System;

namespace Shardwise.Training.Optim;

/// <summary>
/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), DeepSpeed's FusedLion / CPU Lion update
/// on flat fp32 buffers, with one momentum per element:
///   p = p·(1 − lr·wd)                          — decoupled weight decay
///   p -= lr·sign(β1·m + (1−β1)·g)              — the step is the sign of an interpolation (sign(0) = 0)
///   m = β2·m + (1−β2)·g
/// Element-wise, so a ZeRO partition or an NVMe swap chunk steps alone exactly as the whole buffer would.
/// </summary>
internal static class LionKernel
{
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> expAvg, in AdamStepScalars s)
    {
        if (gradients.Length != parameters.Length || expAvg.Length != parameters.Length)
            throw new ArgumentException($"length mismatch: parameters {parameters.Length}, gradients {gradients.Length}, momentum {expAvg.Length}");
        float decay = 1f - s.LearningRate * s.WeightDecay;
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = gradients[i], m = expAvg[i];
            float interpolated = s.Beta1 * m + s.OneMinusBeta1 * g;
            parameters[i] = parameters[i] * decay - s.LearningRate * MathF.Sign(interpolated);
            expAvg[i] = s.Beta2 * m + s.OneMinusBeta2 * g;
        }
    }
}
