using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Shardwise.Data;

/// <summary>
/// Synthetic integer addition so the trainer can learn something real with nothing downloaded. Samples look like
/// <c>"123+45=861\n"</c>: operands in ordinary order, the sum's digits <b>reversed</b> by default (least significant
/// first; 123+45=168 is written 861). Reversal is the usual trick (e.g. Lee et al. 2023, "Teaching Arithmetic to
/// Small Transformers"): a left-to-right model then emits each digit after the digits its carry depends on.
/// Samples are packed back to back into one token stream for <see cref="BatchSampler"/>.
/// <para>
/// The vocabulary is fixed at 14 symbols, <c>"\n+0123456789=_"</c> in id order, so it fits any model with at least
/// 14 embeddings (well under nanoGPT's 65). <c>'_'</c> is padding: it never occurs in the packed stream and exists
/// for fixed-width prompt rows (<see cref="EncodePrompt"/>).
/// </para>
/// </summary>
public sealed class AdditionTask
{
    /// <summary>Every symbol, already in code-point order so a <see cref="CharTokenizer"/> gives id = index.</summary>
    public const string Alphabet = "\n+0123456789=_";

    public const char PaddingChar = '_';

    /// <summary>Sums must fit in a long: two 18-digit operands add to at most 19 digits.</summary>
    public const int MaxSupportedDigits = 18;

    public AdditionTask(int maxDigits = 3, bool reverseAnswer = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDigits, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxDigits, MaxSupportedDigits);
        MaxDigits = maxDigits;
        ReverseAnswer = reverseAnswer;
        Tokenizer = new CharTokenizer(Alphabet.EnumerateRunes());
    }

    /// <summary>Each operand has 1..MaxDigits digits.</summary>
    public int MaxDigits { get; }

    /// <summary>Whether the answer is written least-significant digit first.</summary>
    public bool ReverseAnswer { get; }

    /// <summary>The fixed 14-symbol vocabulary; saving it lets a checkpoint decode the task's tokens.</summary>
    public CharTokenizer Tokenizer { get; }

    public static int NewlineId => Alphabet.IndexOf('\n', StringComparison.Ordinal);

    public static int PlusId => Alphabet.IndexOf('+', StringComparison.Ordinal);

    public static int EqualsId => Alphabet.IndexOf('=', StringComparison.Ordinal);

    public static int PaddingId => Alphabet.IndexOf(PaddingChar, StringComparison.Ordinal);

    public static int DigitId(int digit) => Alphabet.IndexOf((char)('0' + digit), StringComparison.Ordinal);

    public static bool IsDigitId(int id) => id >= DigitId(0) && id <= DigitId(9);

    /// <summary>
    /// Draws one sample: the digit count of each operand is uniform in 1..MaxDigits, then the value is uniform
    /// among numbers of exactly that many digits, so short and long operands are equally common (uniform values
    /// would make 90% of them MaxDigits long).
    /// </summary>
    public AdditionSample NextSample(Xoshiro256StarStar rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        return new AdditionSample(NextOperand(rng), NextOperand(rng));
    }

    /// <summary><paramref name="count"/> samples from <paramref name="seed"/>; the same seed gives the same samples.</summary>
    public IEnumerable<AdditionSample> Samples(int count, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var rng = Xoshiro256StarStar.FromSeed(seed);
        for (var i = 0; i < count; i++)
        {
            yield return NextSample(rng);
        }
    }

    /// <summary>The sample as text, e.g. "123+45=861\n" (reversed) or "123+45=168\n".</summary>
    public string Format(AdditionSample sample)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sample.Left);
        ArgumentOutOfRangeException.ThrowIfNegative(sample.Right);
        return string.Create(CultureInfo.InvariantCulture, $"{sample.Left}+{sample.Right}={FormatAnswer(sample.Sum)}\n");
    }

    /// <summary>The sum as it appears after '=' (reversed when <see cref="ReverseAnswer"/>).</summary>
    public string FormatAnswer(long sum)
    {
        var digits = sum.ToString(CultureInfo.InvariantCulture);
        if (!ReverseAnswer)
        {
            return digits;
        }

        var reversed = digits.ToCharArray();
        Array.Reverse(reversed);
        return new string(reversed);
    }

    /// <summary>
    /// The packed token stream of <paramref name="sampleCount"/> samples: each sample's tokens directly after the
    /// previous sample's newline.
    /// </summary>
    public int[] BuildTokens(int sampleCount, ulong seed)
    {
        var text = new StringBuilder();
        foreach (var sample in Samples(sampleCount, seed))
        {
            text.Append(Format(sample));
        }

        return Tokenizer.Encode(text.ToString());
    }

    /// <summary>The packed stream as a dataset split like any corpus (a sample may straddle the split point).</summary>
    public TokenDataset CreateDataset(int sampleCount, ulong seed, double trainFraction = TokenDataset.DefaultTrainFraction) =>
        new(BuildTokens(sampleCount, seed), Tokenizer.VocabularySize, trainFraction);

    /// <summary>
    /// "a+b=" left-padded with <see cref="PaddingId"/> to <paramref name="width"/> tokens, so prompts of different
    /// lengths line up in one batch for generating answers.
    /// </summary>
    public int[] EncodePrompt(AdditionSample sample, int width)
    {
        var prompt = Tokenizer.Encode(string.Create(CultureInfo.InvariantCulture, $"{sample.Left}+{sample.Right}="));
        if (prompt.Length > width)
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, $"the prompt needs {prompt.Length} tokens");
        }

        var row = new int[width];
        Array.Fill(row, PaddingId, 0, width - prompt.Length);
        prompt.CopyTo(row, width - prompt.Length);
        return row;
    }

    /// <summary>
    /// Marks, for one row, which target positions are answer digits (the digits after '=' up to the newline).
    /// A row can start mid-sample, so the digits before the row's first symbol are classified by that symbol:
    /// a newline ends an answer, while '+' or '=' end an operand. A row with no symbol at all is left unmarked.
    /// </summary>
    /// <param name="inputs">The row's inputs (length = context).</param>
    /// <param name="targets">The row's targets: inputs shifted by one.</param>
    /// <param name="mask">Receives true at answer-digit target positions.</param>
    public static void AnswerMask(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, Span<bool> mask)
    {
        var length = targets.Length;
        if (inputs.Length != length || mask.Length != length)
        {
            throw new ArgumentException($"inputs ({inputs.Length}), targets ({length}) and mask ({mask.Length}) must have the same length");
        }

        mask.Clear();
        if (length == 0)
        {
            return;
        }

        // The row's token sequence is inputs[0] followed by targets; target t is sequence position t + 1.
        var firstSymbol = -1;
        for (var i = 0; i <= length && firstSymbol < 0; i++)
        {
            if (!IsDigitId(At(inputs, targets, i)))
            {
                firstSymbol = i;
            }
        }

        if (firstSymbol < 0)
        {
            return;
        }

        var inAnswer = At(inputs, targets, firstSymbol) == NewlineId;
        for (var i = 0; i <= length; i++)
        {
            var token = At(inputs, targets, i);
            if (IsDigitId(token))
            {
                if (i > 0)
                {
                    mask[i - 1] = inAnswer;
                }
            }
            else
            {
                // After the leading digits are classified, only '=' opens an answer; every other symbol closes one.
                inAnswer = token == EqualsId;
            }
        }
    }

    /// <summary>
    /// Scores argmax predictions for a row-major [batch, context] window: per-digit accuracy on answer digits and
    /// exact-match accuracy on answers wholly inside a row ('=' and the closing newline both in it).
    /// </summary>
    public static AnswerAccuracy Score(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, ReadOnlySpan<int> predictions, int contextLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        if (inputs.Length != targets.Length || predictions.Length != targets.Length || targets.Length % contextLength != 0)
        {
            throw new ArgumentException(
                $"inputs ({inputs.Length}), targets ({targets.Length}) and predictions ({predictions.Length}) must be equal multiples of the context {contextLength}");
        }

        Span<bool> mask = contextLength <= 1024 ? stackalloc bool[contextLength] : new bool[contextLength];
        long correctDigits = 0, totalDigits = 0, correctAnswers = 0, totalAnswers = 0;
        for (var start = 0; start < targets.Length; start += contextLength)
        {
            var rowInputs = inputs.Slice(start, contextLength);
            var rowTargets = targets.Slice(start, contextLength);
            var rowPredictions = predictions.Slice(start, contextLength);
            AnswerMask(rowInputs, rowTargets, mask);
            for (var t = 0; t < contextLength; t++)
            {
                if (mask[t])
                {
                    totalDigits++;
                    correctDigits += rowPredictions[t] == rowTargets[t] ? 1 : 0;
                }
            }

            // Whole answers: '=' at sequence position e, its newline at n <= context; targets e .. n-1 are the
            // answer digits plus the newline, all of which must be right.
            for (var e = 0; e < contextLength; e++)
            {
                if (At(rowInputs, rowTargets, e) != EqualsId)
                {
                    continue;
                }

                var n = e + 1;
                while (n <= contextLength && IsDigitId(At(rowInputs, rowTargets, n)))
                {
                    n++;
                }

                if (n > contextLength || n == e + 1 || At(rowInputs, rowTargets, n) != NewlineId)
                {
                    continue;
                }

                totalAnswers++;
                correctAnswers += rowPredictions[e..n].SequenceEqual(rowTargets[e..n]) ? 1 : 0;
            }
        }

        return new AnswerAccuracy(correctDigits, totalDigits, correctAnswers, totalAnswers);
    }

    private static int At(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int sequenceIndex) =>
        sequenceIndex == 0 ? inputs[0] : targets[sequenceIndex - 1];

    private long NextOperand(Xoshiro256StarStar rng)
    {
        var digits = 1 + rng.NextInt(MaxDigits);
        var low = digits == 1 ? 0 : Pow10(digits - 1);
        var high = Pow10(digits);
        return low + (long)rng.NextBelow((ulong)(high - low));
    }

    private static long Pow10(int exponent)
    {
        long value = 1;
        for (var i = 0; i < exponent; i++)
        {
            value *= 10;
        }

        return value;
    }
}
