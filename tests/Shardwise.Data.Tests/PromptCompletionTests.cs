using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

/// <summary>
/// Fine-tuning data: JSONL prompt/completion pairs are recognised, laid out prompt + completion + separator, and only
/// the completion and its separator are targets; the sampler writes the ignore index for every other target, packed
/// (windows at any offset, the same windows as without the mask) or one example per row from its start, padded after
/// its end, in both splits and after a restore.
/// </summary>
[TestClass]
public sealed class PromptCompletionTests
{
    private const string Pairs = """
        {"prompt": "ab=", "completion": "ba"}

        {"prompt": "abc=", "completion": "cba", "source": "ignored extra field"}
        {"prompt": "b=", "completion": "b"}
        """;

    [TestMethod]
    public void OpenRecognisesPairs_AndKeepsTextRecordsAsText()
    {
        using var pairs = new TempFile(".jsonl", Pairs);
        var source = TextSource.Open(pairs.Path);
        Assert.IsInstanceOfType<PromptCompletionSource>(source);
        CollectionAssert.AreEqual(new[] { ("ab=", "ba"), ("abc=", "cba"), ("b=", "b") }, ((PromptCompletionSource)source).ReadExamples().ToArray());
        CollectionAssert.AreEqual(new[] { "ab=ba", "abc=cba", "b=b" }, source.ReadDocuments().ToArray(), "the text a character vocabulary covers");

        using var text = new TempFile(".jsonl", """{"text": "x", "prompt": "p", "completion": "c"}""");
        Assert.IsInstanceOfType<JsonlTextSource>(TextSource.Open(text.Path), "a text field wins: it is a pretraining corpus with extra fields");
    }

    [TestMethod]
    public void ARecordWithoutACompletion_FailsAtItsLine()
    {
        using var file = new TempFile(".jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"}\n");
        var e = Assert.ThrowsExactly<DataFormatException>(() => ((PromptCompletionSource)TextSource.Open(file.Path)).ReadExamples().ToList());
        Assert.AreEqual($"{file.Path}:3: missing field \"completion\"", e.Message);
        using var number = new TempFile(".jsonl", "{\"prompt\": \"a\", \"completion\": 4}\n");
        StringAssert.Contains(Assert.ThrowsExactly<DataFormatException>(() => ((PromptCompletionSource)TextSource.Open(number.Path)).ReadExamples().ToList()).Message,
            ":1: field \"completion\" must be a string, found a number");
    }

    [TestMethod]
    public void OnlyCompletionsAndTheirSeparatorsAreTrainable()
    {
        using var pairs = new TempFile(".jsonl", Pairs);
        var source = TextSource.Open(pairs.Path);
        var tokenizer = CharTokenizer.Build(source);
        var data = TokenDataset.Build(source, tokenizer, trainFraction: 1.0);

        const string Packed = "ab=ba\n\nabc=cba\n\nb=b\n\n";
        const string Flags = "000111100001111100111";
        Assert.AreEqual(Packed, tokenizer.Decode(data.Tokens.Span));
        Assert.IsTrue(data.HasUntrainedTokens);
        Assert.AreEqual(Flags, string.Concat(data.Trainable(DataSplit.Train).ToArray().Select(t => t ? '1' : '0')));
        Assert.AreEqual(Flags.Count(c => c == '1'), data.TrainableCount);
    }

    [TestMethod]
    public void TheSamplerIgnoresPromptTargets_OnTheWindowsItWouldDrawAnyway()
    {
        var random = new Random(3);
        int[] tokens = Enumerable.Range(0, 500).Select(_ => random.Next(20)).ToArray();
        bool[] trainable = tokens.Select((_, i) => i % 7 >= 3).ToArray();
        var masked = new TokenDataset((int[])tokens.Clone(), 20, trainFraction: 0.8, trainable: (bool[])trainable.Clone());
        var plain = new TokenDataset((int[])tokens.Clone(), 20, trainFraction: 0.8);

        foreach (var split in new[] { DataSplit.Train, DataSplit.Validation })
        {
            var withMask = masked.CreateSampler(split, batchSize: 3, contextLength: 16, seed: 9);
            var without = plain.CreateSampler(split, batchSize: 3, contextLength: 16, seed: 9);
            int offset = split == DataSplit.Train ? 0 : masked.TrainCount;
            int ignored = 0;
            for (int step = 0; step < 20; step++)
            {
                var (inputs, targets) = Draw(withMask);
                var (plainInputs, plainTargets) = Draw(without);
                CollectionAssert.AreEqual(plainInputs, inputs, $"{split}: the same windows");
                for (int i = 0; i < targets.Length; i++)
                {
                    // The window's start is where its first input sits in the split: find the target's token index.
                    int row = i / 16, start = IndexOfWindow(plain.Get(split).Span, plainInputs.AsSpan(row * 16, 16));
                    bool isTarget = trainable[offset + start + 1 + i % 16];
                    Assert.AreEqual(isTarget ? plainTargets[i] : TokenDataset.IgnoredTarget, targets[i], $"{split}, step {step}, target {i}");
                    ignored += isTarget ? 0 : 1;
                }
            }

            Assert.IsTrue(ignored > 0, $"{split}: some targets were ignored");
        }

        // Restored mid-stream, the masked sampler continues with the same masked batches.
        var first = masked.CreateSampler(DataSplit.Train, 3, 16, seed: 4);
        Draw(first);
        var state = first.SaveState();
        var second = masked.CreateSampler(DataSplit.Train, 3, 16, seed: 77);
        second.RestoreState(state);
        CollectionAssert.AreEqual(Draw(first).Targets, Draw(second).Targets);
    }

    [TestMethod]
    public void OneExamplePerRow_FromItsStart_PaddedAfterItsEnd()
    {
        using var pairs = new TempFile(".jsonl", Pairs);
        var source = TextSource.Open(pairs.Path);
        var tokenizer = CharTokenizer.Build(source);
        Assert.IsFalse(TokenDataset.Build(source, tokenizer, trainFraction: 1.0, packExamples: true).ExampleRows, "--packing");
        var data = TokenDataset.Build(source, tokenizer, trainFraction: 1.0);
        Assert.IsTrue(data.ExampleRows);
        Assert.AreEqual(1, data.ExamplesLongerThan(7), "abc=cba + separator: 9 tokens, 8 pairs");

        // Each example as text, with how many of its leading tokens are prompt; context 7 cuts the second one.
        (string Text, int Prompt)[] examples = [("ab=ba\n\n", 3), ("abc=cba\n\n", 4), ("b=b\n\n", 2)];
        const int Context = 7;
        var sampler = data.CreateSampler(DataSplit.Train, batchSize: 4, contextLength: Context, seed: 21);
        var seen = new bool[examples.Length];
        for (int step = 0; step < 10; step++)
        {
            var (inputs, targets) = Draw(sampler);
            for (int row = 0; row < 4; row++)
            {
                string drawn = tokenizer.Decode(inputs.AsSpan(row * Context, Context));
                int e = Array.FindIndex(examples, x => drawn.StartsWith(x.Text[..Math.Min(x.Text.Length - 1, Context)], StringComparison.Ordinal));
                Assert.IsTrue(e >= 0, $"row {row} of step {step} starts no example: \"{drawn}\"");
                seen[e] = true;
                var (text, prompt) = examples[e];
                int pairsInRow = Math.Min(text.Length - 1, Context);
                for (int i = 0; i < Context; i++)
                {
                    string at = $"step {step}, row {row} (example {e}), position {i}";
                    int input = inputs[row * Context + i], target = targets[row * Context + i];
                    if (i < pairsInRow)
                    {
                        Assert.AreEqual(tokenizer.Encode(text[i].ToString())[0], input, at);
                        int expected = i + 1 < prompt ? TokenDataset.IgnoredTarget : tokenizer.Encode(text[i + 1].ToString())[0];
                        Assert.AreEqual(expected, target, at);
                    }
                    else
                    {
                        Assert.AreEqual(tokenizer.Encode(text[pairsInRow].ToString())[0], input, $"{at}: padding repeats the next token");
                        Assert.AreEqual(TokenDataset.IgnoredTarget, target, $"{at}: padding is no target");
                    }
                }
            }
        }

        Assert.IsTrue(seen.All(s => s), "every example drawn");
    }

    [TestMethod]
    public void ExamplesSplitWhereTheyBegin_AndTheStateRemembersTheMode()
    {
        using var pairs = new TempFile(".jsonl", Pairs);
        var source = TextSource.Open(pairs.Path);
        var tokenizer = CharTokenizer.Build(source);
        // 21 tokens; 0.6 puts the split at 12, inside the second example (7..15): it trains, cut; the third validates.
        var data = TokenDataset.Build(source, tokenizer, trainFraction: 0.6);
        CollectionAssert.AreEqual(new[] { 0, 7 }, data.ExampleStarts(DataSplit.Train).ToArray());
        CollectionAssert.AreEqual(new[] { 16 - 12 }, data.ExampleStarts(DataSplit.Validation).ToArray());
        var (inputs, _) = Draw(data.CreateSampler(DataSplit.Validation, 1, 4, seed: 1));
        Assert.AreEqual("b=b\n", tokenizer.Decode(inputs));

        var rows = data.CreateSampler(DataSplit.Train, 2, 4, seed: 5);
        var state = rows.SaveState();
        Assert.AreEqual(2, state.ExampleCount);
        Assert.AreEqual(state, SamplerState.FromJson(state.ToJson()), "exampleCount survives the checkpoint's JSON");
        var packed = TokenDataset.Build(source, tokenizer, trainFraction: 0.6, packExamples: true).CreateSampler(DataSplit.Train, 2, 4, seed: 5);
        var e = Assert.ThrowsExactly<SamplerStateMismatchException>(() => packed.RestoreState(state));
        Assert.AreEqual("sampler state draws one of 2 examples per row; this sampler draws windows at any offset (packed) (was --packing changed?)", e.Reason);
        StringAssert.Contains(e.Message, "sampler state draws one of 2 examples per row; this sampler draws windows at any offset (packed) (was --packing changed?)");
        Assert.AreEqual(0, SamplerState.FromJson(packed.SaveState().ToJson()).ExampleCount, "windows: no exampleCount written");

        var all = TokenDataset.Build(source, tokenizer, trainFraction: 1.0);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => all.CreateSampler(DataSplit.Validation, 1, 4, seed: 1)).Message,
            "no example begins in the validation split");
    }

    private static (int[] Inputs, int[] Targets) Draw(BatchSampler sampler)
    {
        var inputs = new int[sampler.TokensPerBatch];
        var targets = new int[sampler.TokensPerBatch];
        sampler.NextBatch(inputs, targets);
        return (inputs, targets);
    }

    // Random tokens over 20 symbols: a 16-token window occurs once in 400 with overwhelming probability.
    private static int IndexOfWindow(ReadOnlySpan<int> split, ReadOnlySpan<int> window)
    {
        int found = split.IndexOf(window);
        Assert.IsTrue(found >= 0 && split[(found + 1)..].IndexOf(window) < 0, "the window is unique in the split");
        return found;
    }
}
