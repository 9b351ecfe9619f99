using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Data.Tests;

[TestClass]
public sealed class TextSourceTests
{
    [TestMethod]
    public void JsonlYieldsOneDocumentPerNonBlankLine()
    {
        var path = TestData.ShakespeareJsonl;
        var expected = File.ReadLines(path).Count(line => !string.IsNullOrWhiteSpace(line));

        var source = TextSource.Open(path);
        var documents = source.ReadDocuments().ToList();

        Assert.IsInstanceOfType<JsonlTextSource>(source);
        Assert.AreEqual(7222, expected);
        Assert.AreEqual(expected, documents.Count);
        Assert.AreEqual("First Citizen:\nBefore we proceed any further, hear me speak.", documents[0]);
        Assert.AreEqual("All:\nSpeak, speak.", documents[1]);
    }

    [TestMethod]
    public void JsonlDocumentsAreTheParagraphsOfThePlainText()
    {
        var text = File.ReadAllText(TestData.ShakespeareText);
        var joined = string.Join(JsonlTextSource.DefaultSeparator, TextSource.Open(TestData.ShakespeareJsonl).ReadDocuments());

        // The JSONL is the text split at blank lines (runs of them collapse to one); the final newline is dropped.
        var paragraphs = Regex.Replace(text, "\n{3,}", "\n\n").TrimEnd('\n');
        Assert.AreEqual(paragraphs.Length, joined.Length);
        Assert.IsTrue(paragraphs == joined, "joined JSONL documents differ from the paragraphs of the text");
    }

    [TestMethod]
    public void JsonlSkipsBlankLinesAndHonoursTheFieldName()
    {
        using var file = new TempFile(".jsonl", "{\"body\": \"one\", \"text\": 5}\n\n   \n{\"body\": \"two\\nlines\"}\r\n\t\n{\"body\": \"\"}\n");

        var documents = new JsonlTextSource(file.Path, textField: "body").ReadDocuments().ToList();

        CollectionAssert.AreEqual(new[] { "one", "two\nlines", "" }, documents);
    }

    [TestMethod]
    [DataRow("{\"text\": \"unterminated}", "invalid JSON")]
    [DataRow("{\"text\": \"a\"} trailing", "invalid JSON")]
    [DataRow("[\"text\", \"a\"]", "expected a JSON object, found an array")]
    [DataRow("\"just a string\"", "expected a JSON object, found a string")]
    [DataRow("42", "expected a JSON object, found a number")]
    [DataRow("{\"txt\": \"typo\"}", "missing field \"text\"")]
    [DataRow("{\"text\": 17}", "field \"text\" must be a string, found a number")]
    [DataRow("{\"text\": null}", "field \"text\" must be a string, found null")]
    [DataRow("{\"text\": [\"a\"]}", "field \"text\" must be a string, found an array")]
    public void MalformedJsonlLineReportsFileAndLineAndStops(string badLine, string reason)
    {
        // Line 1 good, line 2 blank (still counted), line 3 good, line 4 bad, line 5 good but never reached.
        using var file = new TempFile(".jsonl", $"{{\"text\": \"a\"}}\n\n{{\"text\": \"b\"}}\n{badLine}\n{{\"text\": \"c\"}}\n");
        var seen = new List<string>();

        var error = Assert.ThrowsExactly<DataFormatException>(() =>
        {
            foreach (var document in TextSource.Open(file.Path).ReadDocuments())
            {
                seen.Add(document);
            }
        });

        StringAssert.StartsWith(error.Message, $"{file.Path}:4: {reason}");
        Assert.AreEqual(4L, error.Line);
        Assert.AreEqual(file.Path, error.File);
        CollectionAssert.AreEqual(new[] { "a", "b" }, seen);
    }

    [TestMethod]
    public void InvalidUtf8InJsonlReportsTheLine()
    {
        var bytes = Encoding.UTF8.GetBytes("{\"text\": \"ok\"}\n{\"text\": \"bad ").Concat(new byte[] { 0xC3, 0x28 }).Concat(Encoding.UTF8.GetBytes("\"}\n")).ToArray();
        using var file = new TempFile(".jsonl", bytes);

        var error = Assert.ThrowsExactly<DataFormatException>(() => TextSource.Open(file.Path).ReadDocuments().ToList());

        StringAssert.StartsWith(error.Message, $"{file.Path}:2: invalid UTF-8");
        Assert.AreEqual(2L, error.Line);
    }

    [TestMethod]
    public void JsonlHandlesBomCrLfLongLinesAndNoFinalNewline()
    {
        var longText = new string('x', 200_000) + "é😀";
        var contents = "\uFEFF{\"text\": \"first\"}\r\n{\"text\": \"" + longText + "\"}\r\n\r\n{\"text\": \"last\"}";
        using var file = new TempFile(".jsonl", Encoding.UTF8.GetBytes(contents));

        var documents = TextSource.Open(file.Path).ReadDocuments().ToList();

        CollectionAssert.AreEqual(new[] { "first", longText, "last" }, documents);
    }

    [TestMethod]
    public void OpenChoosesByExtension()
    {
        using var upper = new TempFile(".JSONL", "{\"text\": \"x\"}\n");
        using var plain = new TempFile(".json", "{\"text\": \"x\"}\n");

        Assert.IsInstanceOfType<JsonlTextSource>(TextSource.Open(upper.Path));
        Assert.IsInstanceOfType<PlainTextSource>(TextSource.Open(plain.Path));
        Assert.IsInstanceOfType<PlainTextSource>(TextSource.Open(TestData.ShakespeareText));
        CollectionAssert.AreEqual(new[] { "{\"text\": \"x\"}\n" }, TextSource.Open(plain.Path).ReadDocuments().ToList());
        Assert.ThrowsExactly<FileNotFoundException>(() => TextSource.Open(plain.Path + ".missing"));
    }

    [TestMethod]
    [DataRow(PlainTextSource.DefaultChunkChars, true)]
    [DataRow(4096, true)]
    [DataRow(37, false)]
    public void PlainTextChunksConcatenateToTheExactFile(int chunkChars, bool linesFitInAChunk)
    {
        var text = File.ReadAllText(TestData.ShakespeareText);

        var chunks = new PlainTextSource(TestData.ShakespeareText, chunkChars).ReadDocuments().ToList();

        Assert.AreEqual(text, string.Concat(chunks));
        Assert.IsTrue(chunks.All(c => c.Length <= chunkChars && c.Length > 0));
        Assert.IsTrue(chunks.Count >= text.Length / chunkChars);

        // When whole lines fit, every cut but the last follows a newline and precedes non-whitespace.
        var offset = 0;
        foreach (var chunk in linesFitInAChunk ? chunks.Take(chunks.Count - 1) : [])
        {
            offset += chunk.Length;
            Assert.AreEqual('\n', text[offset - 1], $"cut at {offset}");
            Assert.IsFalse(char.IsWhiteSpace(text[offset]), $"cut at {offset}");
        }
    }

    [TestMethod]
    public void PlainTextWithoutNewlinesNeverSplitsASurrogatePair()
    {
        var text = string.Concat(Enumerable.Repeat("ab😀", 50));
        using var file = new TempFile(".txt", text);

        var chunks = new PlainTextSource(file.Path, chunkChars: 4).ReadDocuments().ToList();

        Assert.AreEqual(text, string.Concat(chunks));
        Assert.IsTrue(chunks.All(c => !char.IsHighSurrogate(c[^1]) && !char.IsLowSurrogate(c[0])));
    }
}
