using System;
using System.Numerics;
using System.Numerics.Tensors;

namespace Shardwise.Cpu;

/// <summary>
/// Softmax cross-entropy against integer targets, through log-sum-exp with the row maximum subtracted so that
/// large logits cannot overflow. <c>scratch</c> arguments hold at least one row (vocabulary elements).
/// A target of <see cref="IgnoreIndex"/> takes its row out of the loss: no loss, a zero gradient, and no share of
/// the mean's divisor (<see cref="MeanDivisor"/>), as PyTorch's <c>ignore_index</c>.
/// </summary>
public static class CrossEntropyKernels
{
    /// <summary>
    /// The target that masks a row out of the loss: PyTorch's and Hugging Face's <c>-100</c>, so that labels prepared
    /// for them mean the same here (the trainer writes it for the positions a sequence-length curriculum cuts off).
    /// </summary>
    public const int IgnoreIndex = -100;

    /// <summary>How many of <paramref name="targets"/> count towards the loss (are not <see cref="IgnoreIndex"/>).</summary>
    public static int CountedRows(ReadOnlySpan<int> targets)
    {
        int ignored = 0;
        foreach (int target in targets) ignored += target == IgnoreIndex ? 1 : 0;
        return targets.Length - ignored;
    }

    /// <summary>
    /// What the summed losses are divided by for the mean: the counted rows. A batch whose every target is ignored
    /// divides by 1, so its loss and gradient are zero rather than PyTorch's NaN: a micro-batch with nothing to
    /// predict (a prompt longer than the context) contributes nothing instead of poisoning the step. No rows at all
    /// stays 0 / 0.
    /// </summary>
    public static int MeanDivisor(ReadOnlySpan<int> targets) => targets.IsEmpty ? 0 : Math.Max(CountedRows(targets), 1);

    /// <summary>Σ over counted rows of −log softmax(logits[r])[targets[r]] (a sum: callers divide by <see cref="MeanDivisor"/>).</summary>
    public static T SumOfLosses<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, Span<T> scratch,
        int rows, int vocabulary)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T sum = T.Zero;
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] == IgnoreIndex) continue;
            ReadOnlySpan<T> row = logits.Slice(r * vocabulary, vocabulary);
            sum += LogSumExp(row, scratch) - row[CheckedTarget(targets[r], r, vocabulary)];
        }

        return sum;
    }

    /// <summary>dLogits (=|+=) factor · (softmax(logits) − onehot(targets)) per row; (=|+=) 0 for an ignored row.</summary>
    public static void Backward<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, Span<T> dLogits,
        Span<T> scratch, int rows, int vocabulary, T factor, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> row = logits.Slice(r * vocabulary, vocabulary);
            Span<T> gradient = dLogits.Slice(r * vocabulary, vocabulary);
            if (IgnoredRow(targets[r], gradient, accumulate)) continue;
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
            if (IgnoredRow(targets[r], gradient, accumulate)) continue;
            int target = CheckedTarget(targets[r], r, vocabulary);
            T targetLogit = row[target];
            Span<T> softmax = accumulate ? scratch[..vocabulary] : gradient;
            (T max, T rowSum) = ShiftedExponentials(row, softmax);
            sum += max + T.Log(rowSum) - targetLogit;
            WriteGradient(softmax, rowSum, gradient, target, factor, accumulate);
        }

        return sum;
    }

    /// <summary>
    /// True for an ignored target, whose gradient row is then zero: cleared when overwriting, left alone when
    /// accumulating (adding zero).
    /// </summary>
    internal static bool IgnoredRow<T>(int target, Span<T> gradient, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (target != IgnoreIndex) return false;
        if (!accumulate) gradient.Clear();
        return true;
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
                $"Target {target} at row {row} is outside the vocabulary [0, {vocabulary}) (and is not the ignore index {IgnoreIndex}).");
        }

        return target;
    }
}
