using System;
using System.Globalization;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

[TestClass]
public sealed class AdditionTaskTests
{
    [TestMethod]
    public void VocabularyIsFixedAndSmall()
    {
        var task = new AdditionTask();

        Assert.AreEqual(14, task.Tokenizer.VocabularySize);
        Assert.AreEqual(AdditionTask.Alphabet, task.Tokenizer.Symbols);
        Assert.AreEqual(0, AdditionTask.NewlineId);
        Assert.AreEqual(1, AdditionTask.PlusId);
        Assert.AreEqual(2, AdditionTask.DigitId(0));
        Assert.AreEqual(11, AdditionTask.DigitId(9));
        Assert.AreEqual(12, AdditionTask.EqualsId);
        Assert.AreEqual(13, AdditionTask.PaddingId);
    }

    [TestMethod]
    [DataRow(3, true)]
    [DataRow(3, false)]
    [DataRow(6, true)]
    public void PackedSamplesAreArithmeticallyCorrect(int maxDigits, bool reversed)
    {
        var task = new AdditionTask(maxDigits, reversed);

        var tokens = task.BuildTokens(3000, seed: 17);
        var text = task.Tokenizer.Decode(tokens);
        var lines = text.Split('\n');

        Assert.AreEqual(3001, lines.Length);
        Assert.AreEqual("", lines[^1], "the stream ends with a newline");
        Assert.IsFalse(tokens.Contains(AdditionTask.PaddingId), "padding never occurs in the packed stream");
        var operandLengths = new bool[maxDigits + 1];
        foreach (var line in lines[..^1])
        {
            var plus = line.IndexOf('+', StringComparison.Ordinal);
            var equals = line.IndexOf('=', StringComparison.Ordinal);
            var left = line[..plus];
            var right = line[(plus + 1)..equals];
            var answer = line[(equals + 1)..];
            if (reversed)
            {
                answer = new string(answer.Reverse().ToArray());
            }

            Assert.IsTrue(left.Length <= maxDigits && right.Length <= maxDigits, line);
            Assert.IsFalse((left.Length > 1 && left[0] == '0') || (right.Length > 1 && right[0] == '0'), $"leading zero in {line}");
            Assert.AreEqual(long.Parse(left, CultureInfo.InvariantCulture) + long.Parse(right, CultureInfo.InvariantCulture), long.Parse(answer, CultureInfo.InvariantCulture), line);
            operandLengths[left.Length] = true;
            operandLengths[right.Length] = true;
        }

        Assert.IsTrue(operandLengths[1..].All(seen => seen), "every operand length 1..maxDigits occurs");
    }

    [TestMethod]
    public void FormatWritesTheAnswerReversedByDefault()
    {
        Assert.AreEqual("123+45=861\n", new AdditionTask().Format(new AdditionSample(123, 45)));
        Assert.AreEqual("999+1=0001\n", new AdditionTask().Format(new AdditionSample(999, 1)));
        Assert.AreEqual("123+4567=4690\n", new AdditionTask(4, reverseAnswer: false).Format(new AdditionSample(123, 4567)));
    }

    [TestMethod]
    public void SameSeedSameStreamOtherSeedOtherStream()
    {
        var task = new AdditionTask();

        CollectionAssert.AreEqual(task.BuildTokens(500, seed: 3), task.BuildTokens(500, seed: 3));
        CollectionAssert.AreNotEqual(task.BuildTokens(500, seed: 3), task.BuildTokens(500, seed: 4));
    }

    [TestMethod]
    public void AnswerMaskMatchesTheTextAtEveryWindowOffset()
    {
        var task = new AdditionTask();
        var tokens = task.BuildTokens(400, seed: 8);
        var text = task.Tokenizer.Decode(tokens);

        // Ground truth from the text: a char is an answer digit when the last '=' or '\n' before it is '='.
        var isAnswerDigit = new bool[text.Length];
        var afterEquals = false;
        for (var i = 0; i < text.Length; i++)
        {
            isAnswerDigit[i] = char.IsAsciiDigit(text[i]) && afterEquals;
            if (text[i] is '=' or '\n')
            {
                afterEquals = text[i] == '=';
            }
        }

        // Digit runs are at most 4 long here, so every window of 12 contains a symbol and the mask is exact.
        foreach (var context in new[] { 12, 31 })
        {
            var mask = new bool[context];
            for (var offset = 0; offset + context + 1 <= tokens.Length && offset < 2000; offset++)
            {
                AdditionTask.AnswerMask(tokens.AsSpan(offset, context), tokens.AsSpan(offset + 1, context), mask);
                CollectionAssert.AreEqual(isAnswerDigit[(offset + 1)..(offset + 1 + context)], mask, $"offset {offset}, context {context}");
            }
        }
    }

    [TestMethod]
    public void AnswerMaskOnAHandWrittenRow()
    {
        var task = new AdditionTask();
        var sequence = task.Tokenizer.Encode("21\n12+5=71\n3+4=7\n9");
        var mask = new bool[sequence.Length - 1];

        AdditionTask.AnswerMask(sequence.AsSpan(0, mask.Length), sequence.AsSpan(1), mask);

        // Targets are "1\n12+5=71\n3+4=7\n9": the leading "1" ends an answer (a newline follows), as do 7, 1, 7.
        var expected = "1\n12+5=71\n3+4=7\n9".Select((c, i) => i is 0 or 7 or 8 or 14).ToArray();
        CollectionAssert.AreEqual(expected, mask);
    }

    [TestMethod]
    public void ScoreCountsAnswerDigitsAndWholeAnswers()
    {
        var task = new AdditionTask();
        var sequence = task.Tokenizer.Encode("12+5=71\n3+4=7\n45+");
        var context = sequence.Length - 1;
        var inputs = sequence[..context];
        var targets = sequence[1..];

        var perfect = AdditionTask.Score(inputs, targets, targets, context);
        Assert.AreEqual(new AnswerAccuracy(3, 3, 2, 2), perfect);
        Assert.AreEqual(1.0, perfect.DigitAccuracy);

        // Wrong first answer digit: one digit and one whole answer lost.
        var wrongDigit = (int[])targets.Clone();
        wrongDigit[4] = AdditionTask.DigitId(0);
        Assert.AreEqual(new AnswerAccuracy(2, 3, 1, 2), AdditionTask.Score(inputs, targets, wrongDigit, context));

        // A missed newline after "7" spoils that whole answer but no digit.
        var noStop = (int[])targets.Clone();
        noStop[6] = AdditionTask.DigitId(3);
        Assert.AreEqual(new AnswerAccuracy(3, 3, 1, 2), AdditionTask.Score(inputs, targets, noStop, context));

        // Operand mistakes are not scored.
        var wrongOperand = (int[])targets.Clone();
        wrongOperand[0] = AdditionTask.DigitId(9);
        Assert.AreEqual(perfect, AdditionTask.Score(inputs, targets, wrongOperand, context));
    }

    [TestMethod]
    public void ScoreOnSampledBatchesAgreesWithTheMask()
    {
        var task = new AdditionTask();
        var data = task.CreateDataset(2000, seed: 21);
        var sampler = data.CreateSampler(DataSplit.Train, batchSize: 6, contextLength: 24, seed: 5);
        var inputs = new int[sampler.TokensPerBatch];
        var targets = new int[sampler.TokensPerBatch];
        sampler.NextBatch(inputs, targets);

        // Predict "always 0": correct exactly where the answer digit is 0.
        var zeros = Enumerable.Repeat(AdditionTask.DigitId(0), targets.Length).ToArray();
        var score = AdditionTask.Score(inputs, targets, zeros, 24);

        var mask = new bool[24];
        long total = 0, zeroDigits = 0;
        for (var row = 0; row < 6; row++)
        {
            AdditionTask.AnswerMask(inputs.AsSpan(row * 24, 24), targets.AsSpan(row * 24, 24), mask);
            for (var t = 0; t < 24; t++)
            {
                if (mask[t])
                {
                    total++;
                    zeroDigits += targets[(row * 24) + t] == AdditionTask.DigitId(0) ? 1 : 0;
                }
            }
        }

        Assert.IsTrue(total > 20, $"only {total} answer digits");
        Assert.AreEqual(total, score.TotalDigits);
        Assert.AreEqual(zeroDigits, score.CorrectDigits);
        Assert.AreEqual(0L, score.CorrectAnswers);
        Assert.IsTrue(score.TotalAnswers > 0);
    }

    [TestMethod]
    public void PromptsArePaddedOnTheLeft()
    {
        var task = new AdditionTask();

        var row = task.EncodePrompt(new AdditionSample(12, 7), width: 8);

        Assert.AreEqual("___12+7=", task.Tokenizer.Decode(row));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => task.EncodePrompt(new AdditionSample(123, 456), width: 7));
    }
}
