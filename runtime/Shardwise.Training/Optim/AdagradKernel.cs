using System;

namespace Shardwise.Training.Optim;

/// <summary>
/// Adagrad, DeepSpeed's CPU Adagrad update (and torch.optim.Adagrad's without lr_decay) on flat fp32 buffers, with one
/// accumulator per element (kept where Adam keeps its second moment, <c>exp_avg_sq</c>, DeepSpeed's name for it too):
///   g += wd·p                                   — L2 weight decay, in the gradient
///   s += g²
///   p -= lr·g / (√s + ε)
/// Element-wise, so a ZeRO partition or an NVMe swap chunk steps alone exactly as the whole buffer would.
/// </summary>
internal static class AdagradKernel
{
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> sumOfSquares, in AdamStepScalars s)
    {
        if (gradients.Length != parameters.Length || sumOfSquares.Length != parameters.Length)
            throw new ArgumentException($"length mismatch: parameters {parameters.Length}, gradients {gradients.Length}, accumulator {sumOfSquares.Length}");
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = gradients[i] + s.WeightDecay * parameters[i];
            float sum = sumOfSquares[i] + g * g;
            sumOfSquares[i] = sum;
            parameters[i] -= s.LearningRate * g / (MathF.Sqrt(sum) + s.Eps);
        }
    }
}
