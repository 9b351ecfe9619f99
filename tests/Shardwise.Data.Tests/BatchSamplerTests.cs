using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

[TestClass]
public sealed class BatchSamplerTests
{
    private const int Batch = 8;
    private const int Context = 64;

    private static readonly Lazy<TokenDataset> Shakespeare = new(() =>
    {
        var source = TextSource.Open(TestData.ShakespeareText);
        return TokenDataset.Build(source, CharTokenizer.Build(source));
    });

    private static (int[] Inputs, int[] Targets) Draw(BatchSampler sampler)
    {
        var inputs = new int[sampler.TokensPerBatch];
        var targets = new int[sampler.TokensPerBatch];
        sampler.NextBatch(inputs, targets);
        return (inputs, targets);
    }

    [TestMethod]
    public void EachRowIsAWindowOfTheSplitWithTargetsShiftedByOne()
    {
        var data = Shakespeare.Value;
        var train = data.Train.Span;
        var sampler = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 1);

        for (var step = 0; step < 5; step++)
        {
            var (inputs, targets) = Draw(sampler);
            for (var row = 0; row < Batch; row++)
            {
                var x = inputs.AsSpan(row * Context, Context);
                var y = targets.AsSpan(row * Context, Context);
                Assert.IsTrue(x[1..].SequenceEqual(y[..^1]), $"row {row}: targets are not inputs shifted by one");

                // The window (inputs plus the last target) must occur in the train split.
                var window = new int[Context + 1];
                x.CopyTo(window);
                window[^1] = y[^1];
                Assert.IsTrue(train.IndexOf(window) >= 0, $"row {row} is not a window of the train split");
            }
        }
    }

    [TestMethod]
    public void OffsetsCoverEveryWindowAndNoMore()
    {
        // Token i is i, so a row's first input is its offset.
        const int length = 40;
        const int context = 8;
        var sampler = new BatchSampler(Enumerable.Range(0, length).ToArray(), batchSize: 4, contextLength: context, seed: 5);
        var seen = new bool[length];

        for (var step = 0; step < 200; step++)
        {
            var (inputs, targets) = Draw(sampler);
            for (var row = 0; row < 4; row++)
            {
                seen[inputs[row * context]] = true;
                Assert.AreEqual(inputs[row * context] + context, targets[(row * context) + context - 1]);
            }
        }

        // Offsets 0..length-context-1 (the last window ends on the last token), like nanoGPT's get_batch.
        Assert.IsTrue(seen[..(length - context)].All(s => s));
        Assert.IsFalse(seen[(length - context)..].Any(s => s));
        Assert.AreEqual(200L, sampler.Step);
    }

    [TestMethod]
    public void SameSeedGivesSameBatchesAndOtherSeedsOrStreamsDiffer()
    {
        var data = Shakespeare.Value;
        var a = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 42);
        var b = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 42);
        var otherSeed = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 43);
        var otherStream = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 42, stream: 1);

        for (var step = 0; step < 10; step++)
        {
            var first = Draw(a);
            var second = Draw(b);
            CollectionAssert.AreEqual(first.Inputs, second.Inputs);
            CollectionAssert.AreEqual(first.Targets, second.Targets);
            CollectionAssert.AreNotEqual(first.Inputs, Draw(otherSeed).Inputs);
            CollectionAssert.AreNotEqual(first.Inputs, Draw(otherStream).Inputs);
        }
    }

    [TestMethod]
    public void RestoredStateContinuesBitwiseIdentically()
    {
        var data = Shakespeare.Value;
        var original = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 2024);
        for (var step = 0; step < 7; step++)
        {
            Draw(original);
        }

        // Through JSON, as a checkpoint would store it.
        var saved = SamplerState.FromJson(original.SaveState().ToJson());
        var resumed = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 999);
        resumed.RestoreState(saved);

        Assert.AreEqual(7L, resumed.Step);
        Assert.AreEqual(original.SaveState(), saved);
        for (var step = 0; step < 20; step++)
        {
            var expected = Draw(original);
            var actual = Draw(resumed);
            CollectionAssert.AreEqual(expected.Inputs, actual.Inputs, $"step {step}");
            CollectionAssert.AreEqual(expected.Targets, actual.Targets, $"step {step}");
        }

        Assert.AreEqual(27L, resumed.Step);
        Assert.AreEqual(original.SaveState(), resumed.SaveState());
    }

    [TestMethod]
    public void RestoreRejectsAStateForAnotherShapeOrDataset()
    {
        var data = Shakespeare.Value;
        var state = data.CreateSampler(DataSplit.Train, Batch, Context, seed: 1).SaveState();

        Assert.ThrowsExactly<SamplerStateMismatchException>(() => data.CreateSampler(DataSplit.Train, Batch, Context + 1, seed: 1).RestoreState(state));
        Assert.ThrowsExactly<SamplerStateMismatchException>(() => data.CreateSampler(DataSplit.Train, Batch * 2, Context, seed: 1).RestoreState(state));
        Assert.ThrowsExactly<SamplerStateMismatchException>(() => data.CreateSampler(DataSplit.Validation, Batch, Context, seed: 1).RestoreState(state));
    }

    [TestMethod]
    public void NextBatchAllocatesNothingAndChecksBufferSizes()
    {
        var sampler = Shakespeare.Value.CreateSampler(DataSplit.Train, Batch, Context, seed: 3);
        var inputs = new int[sampler.TokensPerBatch];
        var targets = new int[sampler.TokensPerBatch];
        sampler.NextBatch(inputs, targets);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var step = 0; step < 1000; step++)
        {
            sampler.NextBatch(inputs, targets);
        }

        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.ThrowsExactly<ArgumentException>(() => sampler.NextBatch(new int[sampler.TokensPerBatch - 1], targets));
    }

    [TestMethod]
    public void TooLittleDataForOneWindowIsRejected()
    {
        Assert.ThrowsExactly<ArgumentException>(() => new BatchSampler(new int[8], 1, 8, seed: 0));
        var only = new BatchSampler(Enumerable.Range(0, 9).ToArray(), 2, 8, seed: 0);
        var (inputs, targets) = Draw(only);
        CollectionAssert.AreEqual(new[] { 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7 }, inputs);
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8 }, targets);
    }

    [TestMethod]
    public void EvaluationBatchesAreFixedAndStayInTheirSplit()
    {
        var data = new TokenDataset(Enumerable.Range(0, 1000).ToArray(), vocabularySize: 1000);

        var first = data.EvaluationBatches(DataSplit.Validation, batchSize: 4, contextLength: 16, count: 5, seed: 11);
        var again = data.EvaluationBatches(DataSplit.Validation, batchSize: 4, contextLength: 16, count: 5, seed: 11);
        var otherSeed = data.EvaluationBatches(DataSplit.Validation, batchSize: 4, contextLength: 16, count: 5, seed: 12);

        Assert.AreEqual(5, first.Count);
        for (var i = 0; i < first.Count; i++)
        {
            CollectionAssert.AreEqual(first[i].Inputs, again[i].Inputs);
            CollectionAssert.AreEqual(first[i].Targets, again[i].Targets);
            Assert.AreEqual(64, first[i].Inputs.Length);
            Assert.IsTrue(first[i].Inputs.All(t => t >= 900) && first[i].Targets.All(t => t >= 900), "validation batch left the split");
        }

        Assert.IsFalse(first.Zip(otherSeed).All(p => p.First.Inputs.SequenceEqual(p.Second.Inputs)));
    }
}
