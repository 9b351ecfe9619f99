using System;
using System.Linq;
using Shardwise.Cpu;

namespace Shardwise;

/// <summary>Training objectives.</summary>
public static class Loss
{
    /// <summary>
    /// Mean over rows of −log softmax(logits)[target]: logits <c>[.., vocabulary]</c>, targets a token tensor of
    /// shape <c>[..]</c>; returns a scalar (shape []). A target of <see cref="CrossEntropyKernels.IgnoreIndex"/> (−100)
    /// leaves its row out of the mean, as PyTorch's <c>ignore_index</c>.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        float[] values = logits.RealData(nameof(CrossEntropy));
        int[] targetIds = targets.TokenIndices(nameof(CrossEntropy));
        if (logits.Rank == 0 || !logits.Shape[..^1].SequenceEqual(targets.Shape))
        {
            throw new ArgumentException(
                $"{nameof(CrossEntropy)} needs logits [.., vocabulary] and targets [..] with the same leading shape, " +
                $"but got logits {Tensor.Describe(logits.Shape)} and targets {Tensor.Describe(targets.Shape)}.");
        }

        int vocabulary = logits.Shape[^1], rows = targetIds.Length;
        var scratch = new float[vocabulary];
        float sum = CrossEntropyKernels.SumOfLosses<float>(values, targetIds, scratch, rows, vocabulary);
        return Tensor.FromArray([sum / CrossEntropyKernels.MeanDivisor(targetIds)]);
    }
}
