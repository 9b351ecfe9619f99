using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

[TestClass]
public sealed class Gpt2TokenizerTests
{
    [TestMethod]
    public void HelloWorldHasGpt2sKnownIds()
    {
        var tokenizer = new Gpt2Tokenizer();

        var ids = tokenizer.Encode("Hello world");

        CollectionAssert.AreEqual(new[] { 15496, 995 }, ids);
        Assert.AreEqual("Hello world", tokenizer.Decode(ids));
        Assert.AreEqual(50257, tokenizer.VocabularySize);
        Assert.AreEqual("gpt2", tokenizer.Kind);
    }

    [TestMethod]
    public void KnownIdsAndEndOfText()
    {
        var tokenizer = new Gpt2Tokenizer();

        CollectionAssert.AreEqual(new[] { 262 }, tokenizer.Encode(" the"));
        Assert.AreEqual("<|endoftext|>", tokenizer.Decode([Gpt2Tokenizer.EndOfTextId]));
        CollectionAssert.AreEqual(new[] { 64, Gpt2Tokenizer.EndOfTextId, 65 }, tokenizer.Encode("a<|endoftext|>b"));
    }

    [TestMethod]
    public void DocumentsCanBeSeparatedByEndOfText()
    {
        using var file = new TempFile(".jsonl", "{\"text\": \"Hello world\"}\n{\"text\": \" the\"}\n");

        var data = TokenDataset.Build(TextSource.Open(file.Path), new Gpt2Tokenizer(), trainFraction: 1.0, separator: "<|endoftext|>");

        CollectionAssert.AreEqual(new[] { 15496, 995, Gpt2Tokenizer.EndOfTextId, 262 }, data.Tokens.ToArray());
        Assert.AreEqual(50257, data.VocabularySize);
    }

    [TestMethod]
    public void ShakespeareRoundTripsWithIdsInRange()
    {
        var text = File.ReadAllText(TestData.ShakespeareText)[..20_000];
        var tokenizer = new Gpt2Tokenizer();

        var ids = tokenizer.Encode(text);

        Assert.AreEqual(text, tokenizer.Decode(ids));
        Assert.IsTrue(ids.All(id => id is >= 0 and < Gpt2Tokenizer.GptVocabularySize));

        // BPE merges: far fewer tokens than characters (English runs ~3-4.5 chars per token).
        Assert.IsTrue(ids.Length < text.Length / 3, $"{ids.Length} tokens for {text.Length} chars");
    }

    [TestMethod]
    public void SaveWritesOnlyTheKindAndLoadsBack()
    {
        using var file = new TempFile(".json", "");

        new Gpt2Tokenizer().Save(file.Path);
        var loaded = TokenizerFile.Load(file.Path);

        Assert.IsInstanceOfType<Gpt2Tokenizer>(loaded);
        Assert.AreEqual("{\n  \"kind\": \"gpt2\"\n}", File.ReadAllText(file.Path).ReplaceLineEndings("\n"));
        CollectionAssert.AreEqual(new[] { 15496, 995 }, loaded.Encode("Hello world"));
    }
}
