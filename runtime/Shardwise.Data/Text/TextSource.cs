using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Shardwise.Data;

/// <summary>
/// A corpus read as a stream of documents, so a large JSONL file never has to sit in memory as one string.
/// Enumerating <see cref="ReadDocuments"/> reopens the file each time, so a source can be read twice (once to
/// build a character vocabulary, once to encode).
/// </summary>
public abstract class TextSource
{
    protected TextSource(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
    }

    /// <summary>The file this source reads, as given.</summary>
    public string Path { get; }

    /// <summary>
    /// Text that stands between consecutive documents when they are joined into one token stream. Plain-text chunks
    /// are pieces of one text, so their separator is empty; JSONL documents are separate, so they get one.
    /// </summary>
    public abstract string Separator { get; }

    /// <summary>Documents in file order. Throws <see cref="DataFormatException"/> at the first malformed record.</summary>
    public abstract IEnumerable<string> ReadDocuments();

    /// <summary>
    /// Chooses the reader by extension: <c>.jsonl</c> is one JSON object per line with the text in
    /// <paramref name="textField"/>, or prompt-completion pairs for fine-tuning when the first record has
    /// <c>prompt</c> and <c>completion</c> fields (and no <paramref name="textField"/>); anything else is UTF-8 plain
    /// text.
    /// </summary>
    public static TextSource Open(string path, string textField = JsonlTextSource.DefaultTextField)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"text source not found: {path}", path);
        }

        if (!string.Equals(System.IO.Path.GetExtension(path), ".jsonl", StringComparison.OrdinalIgnoreCase))
            return new PlainTextSource(path);
        return IsPromptCompletion(path, textField) ? new PromptCompletionSource(path) : new JsonlTextSource(path, textField);
    }

    /// <summary>Whether the first record has prompt and completion fields and no text field (one read of one line).</summary>
    private static bool IsPromptCompletion(string path, string textField)
    {
        foreach (var (record, _) in JsonlRecords.Read(path))
            return PromptCompletionSource.Recognises(record) && !record.TryGetProperty(textField, out _);
        return false;
    }

    /// <summary>Strict UTF-8: a corrupt byte must fail loudly instead of becoming U+FFFD in the vocabulary.</summary>
    internal static readonly Encoding StrictUtf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
