using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

[TestClass]
public sealed class CharTokenizerTests
{
    // nanoGPT's shakespeare_char vocabulary (prepare.py: sorted(list(set(data)))).
    private const string ShakespeareChars = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    [TestMethod]
    public void ShakespeareHasNanoGptsSixtyFiveSymbols()
    {
        var tokenizer = CharTokenizer.Build(TextSource.Open(TestData.ShakespeareText));

        Assert.AreEqual(65, tokenizer.VocabularySize);
        Assert.AreEqual(ShakespeareChars, tokenizer.Symbols);
        Assert.AreEqual("char", tokenizer.Kind);
    }

    [TestMethod]
    public void JsonlSourceGivesTheSameVocabulary()
    {
        var tokenizer = CharTokenizer.Build(TextSource.Open(TestData.ShakespeareJsonl));

        Assert.AreEqual(ShakespeareChars, tokenizer.Symbols);
    }

    [TestMethod]
    public void WholeCorpusRoundTripsExactly()
    {
        var text = File.ReadAllText(TestData.ShakespeareText);
        var tokenizer = CharTokenizer.FromText(text);

        var ids = tokenizer.Encode(text);

        Assert.AreEqual(1_115_394, ids.Length);
        Assert.AreEqual(text, tokenizer.Decode(ids));

        // "First" → F=18, i=47, r=56, s=57, t=58 in nanoGPT's stoi.
        CollectionAssert.AreEqual(new[] { 18, 47, 56, 57, 58 }, ids[..5]);
    }

    [TestMethod]
    public void UnknownCharacterIsNamedWithItsCodePoint()
    {
        var tokenizer = CharTokenizer.FromText(ShakespeareChars);

        var error = Assert.ThrowsExactly<ArgumentException>(() => tokenizer.Encode("café"));

        StringAssert.Contains(error.Message, "'é'");
        StringAssert.Contains(error.Message, "U+00E9");
        StringAssert.Contains(error.Message, "index 3");
    }

    [TestMethod]
    public void CodePointsOutsideTheBmpAreSingleSymbols()
    {
        var tokenizer = CharTokenizer.FromText("b😀a😀");

        Assert.AreEqual(3, tokenizer.VocabularySize);
        CollectionAssert.AreEqual(new[] { 1, 2, 0 }, tokenizer.Encode("b😀a"));
        Assert.AreEqual("a😀b", tokenizer.Decode([0, 2, 1]));
        Assert.ThrowsExactly<ArgumentException>(() => tokenizer.Encode("a\uD83Db"));
    }

    [TestMethod]
    public void DecodeRejectsIdsOutsideTheVocabulary()
    {
        var tokenizer = CharTokenizer.FromText("ab");

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tokenizer.Decode([0, 2]));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));
    }

    [TestMethod]
    public void SaveAndLoadGiveTheSameTokenizer()
    {
        var text = File.ReadAllText(TestData.ShakespeareText);
        var original = CharTokenizer.FromText(text);
        using var file = new TempFile(".json", "");

        original.Save(file.Path);
        var loaded = TokenizerFile.Load(file.Path);

        Assert.IsInstanceOfType<CharTokenizer>(loaded);
        Assert.AreEqual(original.Symbols, ((CharTokenizer)loaded).Symbols);
        var sample = text[..5000];
        CollectionAssert.AreEqual(original.Encode(sample), loaded.Encode(sample));
        StringAssert.Contains(File.ReadAllText(file.Path), "\"kind\": \"char\"");
    }

    [TestMethod]
    public void LoadRejectsUnsortedCharsAndUnknownKinds()
    {
        using var unsorted = new TempFile(".json", "{\"kind\": \"char\", \"chars\": \"ba\"}");
        using var duplicate = new TempFile(".json", "{\"kind\": \"char\", \"chars\": \"aa\"}");
        using var unknown = new TempFile(".json", "{\"kind\": \"sentencepiece\"}");
        using var noKind = new TempFile(".json", "{\"chars\": \"ab\"}");

        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => TokenizerFile.Load(unsorted.Path)).Message, "sorted");
        Assert.ThrowsExactly<InvalidDataException>(() => TokenizerFile.Load(duplicate.Path));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => TokenizerFile.Load(unknown.Path)).Message, "sentencepiece");
        Assert.ThrowsExactly<InvalidDataException>(() => TokenizerFile.Load(noKind.Path));
    }

    [TestMethod]
    public void ControlCharactersRoundTripThroughSave()
    {
        var original = new CharTokenizer("\t\0\"\\z".EnumerateRunes());
        using var file = new TempFile(".json", "");

        original.Save(file.Path);

        Assert.AreEqual(original.Symbols, ((CharTokenizer)TokenizerFile.Load(file.Path)).Symbols);
        Assert.AreEqual(5, original.VocabularySize);
    }
}
