using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

[TestClass]
public sealed class TokenDatasetTests
{
    [TestMethod]
    public void ShakespeareSplitsLikeNanoGpt()
    {
        var source = TextSource.Open(TestData.ShakespeareText);
        var tokenizer = CharTokenizer.Build(source);

        var data = TokenDataset.Build(source, tokenizer);

        // nanoGPT's data/shakespeare_char/prepare.py: "train has 1,003,854 tokens, val has 111,540 tokens".
        Assert.AreEqual(1_115_394, data.Count);
        Assert.AreEqual(1_003_854, data.TrainCount);
        Assert.AreEqual(111_540, data.ValidationCount);
        Assert.AreEqual(65, data.VocabularySize);
        Assert.IsTrue(data.Train.Span.SequenceEqual(data.Tokens.Span[..1_003_854]));
        Assert.IsTrue(data.Validation.Span.SequenceEqual(data.Tokens.Span[1_003_854..]));
        Assert.AreEqual(File.ReadAllText(TestData.ShakespeareText), tokenizer.Decode(data.Tokens.Span));
    }

    [TestMethod]
    public void JsonlDocumentsAreJoinedWithTheSeparator()
    {
        var source = TextSource.Open(TestData.ShakespeareJsonl);
        var tokenizer = CharTokenizer.Build(source);
        var documents = source.ReadDocuments().ToList();

        var data = TokenDataset.Build(source, tokenizer);

        Assert.AreEqual(documents.Sum(d => d.Length) + (2 * (documents.Count - 1)), data.Count);
        Assert.AreEqual(string.Join("\n\n", documents), tokenizer.Decode(data.Tokens.Span));
    }

    [TestMethod]
    [DataRow(0.5, 5)]
    [DataRow(0.75, 7)]
    [DataRow(1.0, 10)]
    public void FractionChoosesTheSplitPoint(double fraction, int expectedTrain)
    {
        var data = new TokenDataset(Enumerable.Range(0, 10).ToArray(), vocabularySize: 10, trainFraction: fraction);

        Assert.AreEqual(expectedTrain, data.TrainCount);
        Assert.AreEqual(10 - expectedTrain, data.ValidationCount);
        Assert.AreEqual(0, data.Get(DataSplit.Train).Span[0]);
        if (expectedTrain < 10)
        {
            Assert.AreEqual(expectedTrain, data.Get(DataSplit.Validation).Span[0]);
        }
    }

    [TestMethod]
    public void RejectsBadFractionsAndOutOfVocabularyIds()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TokenDataset([0, 1], 2, trainFraction: 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TokenDataset([0, 1], 2, trainFraction: 1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TokenDataset([0, 1], 2, trainFraction: double.NaN));
        var error = Assert.ThrowsExactly<ArgumentException>(() => new TokenDataset([0, 1, 2], 2));
        StringAssert.Contains(error.Message, "position 2");
    }
}
