using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>
/// Softmax cross-entropy against integer targets, through log-sum-exp with the row maximum subtracted so that
/// large logits cannot overflow. <c>scratch</c> arguments hold at least one row (vocabulary elements).
/// </summary>
public static class CrossEntropyKernels
{
    /// <summary>Σ over rows of −log softmax(logits[r])[targets[r]] (a sum: callers divide by the row count).</summary>
    public static T SumOfLosses<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, Span<T> scratch,
        int rows, int vocabulary)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T sum = T.Zero;
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> row = logits.Slice(r * vocabulary, vocabulary);
            sum += LogSumExp(row, scratch) - row[CheckedTarget(targets[r], r, vocabulary)];
        }

        return sum;
    }

    /// <summary>dLogits (=|+=) factor · (softmax(logits) − onehot(targets)) per row.</summary>
    public static void Backward<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, Span<T> dLogits,
        Span<T> scratch, int rows, int vocabulary, T factor, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> row = logits.Slice(r * vocabulary, vocabulary);
            Span<T> gradient = dLogits.Slice(r * vocabulary, vocabulary);
            int target = CheckedTarget(targets[r], r, vocabulary);
            // Overwriting can build the softmax in place; accumulating must not disturb what is there.
            Span<T> softmax = accumulate ? scratch[..vocabulary] : gradient;
            (_, T sum) = ShiftedExponentials(row, softmax);
            WriteGradient(softmax, sum, gradient, target, factor, accumulate);
        }
    }

    /// <summary>
    /// <see cref="SumOfLosses"/> and <see cref="Backward"/> in one pass over each row: the returned sum and dLogits
    /// are theirs bit for bit (the same operations in the same order). dLogits may be the logits (accumulate off):
    /// each row's target logit is read before the row is overwritten.
    /// </summary>
    public static T SumOfLossesAndGradient<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, Span<T> dLogits,
        Span<T> scratch, int rows, int vocabulary, T factor, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T sum = T.Zero;
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> row = logits.Slice(r * vocabulary, vocabulary);
            Span<T> gradient = dLogits.Slice(r * vocabulary, vocabulary);
            int target = CheckedTarget(targets[r], r, vocabulary);
            T targetLogit = row[target];
            Span<T> softmax = accumulate ? scratch[..vocabulary] : gradient;
            (T max, T rowSum) = ShiftedExponentials(row, softmax);
            sum += max + T.Log(rowSum) - targetLogit;
            WriteGradient(softmax, rowSum, gradient, target, factor, accumulate);
        }

        return sum;
    }

    private static T LogSumExp<T>(ReadOnlySpan<T> row, Span<T> scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        (T max, T sum) = ShiftedExponentials(row, scratch[..row.Length]);
        return max + T.Log(sum);
    }

    /// <summary>
    /// exp(row − max(row)) into <paramref name="exponentials"/> (which may be the row's own memory); returns the max
    /// and the exponentials' sum. Every pass over a row goes through here, so the loss and the gradient see the same
    /// values.
    /// </summary>
    private static (T Max, T Sum) ShiftedExponentials<T>(ReadOnlySpan<T> row, Span<T> exponentials)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T max = TensorPrimitives.Max(row);
        TensorPrimitives.Subtract(row, max, exponentials);
        TensorPrimitives.Exp<T>(exponentials, exponentials);
        return (max, TensorPrimitives.Sum<T>(exponentials));
    }

    /// <summary>gradient (=|+=) factor · (exponentials / sum − onehot(target)): one row's softmax gradient.</summary>
    private static void WriteGradient<T>(ReadOnlySpan<T> exponentials, T sum, Span<T> gradient, int target, T factor,
        bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T rowFactor = factor / sum;
        if (accumulate) TensorPrimitives.FusedMultiplyAdd(exponentials, rowFactor, gradient, gradient);
        else TensorPrimitives.Multiply(exponentials, rowFactor, gradient);
        gradient[target] -= factor;
    }

    private static int CheckedTarget(int target, int row, int vocabulary)
    {
        if ((uint)target >= (uint)vocabulary)
        {
            throw new ArgumentOutOfRangeException(nameof(target),
                $"Target {target} at row {row} is outside the vocabulary [0, {vocabulary}).");
        }

        return target;
    }
}
