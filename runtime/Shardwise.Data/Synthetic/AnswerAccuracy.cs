using System;

namespace Shardwise.Data;

/// <summary>
/// Accuracy on the answers of addition samples, counted only where the answer is known from the batch itself.
/// Digits are per position (the next-token prediction of each answer digit); answers are exact matches of every
/// answer digit plus the closing newline, for answers lying wholly inside one row.
/// </summary>
public readonly record struct AnswerAccuracy(long CorrectDigits, long TotalDigits, long CorrectAnswers, long TotalAnswers)
{
    /// <summary>Fraction of answer digits predicted right; NaN when there were none.</summary>
    public double DigitAccuracy => TotalDigits == 0 ? double.NaN : (double)CorrectDigits / TotalDigits;

    /// <summary>Fraction of whole answers predicted right; NaN when there were none.</summary>
    public double AnswerExactness => TotalAnswers == 0 ? double.NaN : (double)CorrectAnswers / TotalAnswers;

    public static AnswerAccuracy operator +(AnswerAccuracy a, AnswerAccuracy b) => new(
        checked(a.CorrectDigits + b.CorrectDigits),
        checked(a.TotalDigits + b.TotalDigits),
        checked(a.CorrectAnswers + b.CorrectAnswers),
        checked(a.TotalAnswers + b.TotalAnswers));

    public override string ToString() =>
        FormattableString.Invariant($"digits {CorrectDigits}/{TotalDigits} ({DigitAccuracy:P1}), answers {CorrectAnswers}/{TotalAnswers} ({AnswerExactness:P1})");
}
