using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

/// <summary>
/// Fine-tuning data: JSONL prompt/completion pairs are recognised, packed prompt + completion + separator, and only
/// the completion and its separator are targets; the sampler writes the ignore index for every other target, on the
/// same windows as without the mask, in both splits and after a restore.
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
