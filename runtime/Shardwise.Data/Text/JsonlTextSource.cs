using System;
using System.Collections.Generic;

namespace Shardwise.Data;

/// <summary>
/// JSON Lines: one object per line, the document in a string field (default <c>"text"</c>). Blank lines are
/// skipped; anything else that is not such an object stops the read with <c>FILE:LINE: reason</c>.
/// </summary>
public sealed class JsonlTextSource : TextSource
{
    public const string DefaultTextField = "text";

    /// <summary>A blank line: JSONL corpora are usually paragraphs or whole documents, so keep them apart.</summary>
    public const string DefaultSeparator = "\n\n";

    private readonly string separator;

    public JsonlTextSource(string path, string textField = DefaultTextField, string separator = DefaultSeparator)
        : base(path)
    {
        ArgumentException.ThrowIfNullOrEmpty(textField);
        ArgumentNullException.ThrowIfNull(separator);
        TextField = textField;
        this.separator = separator;
    }

    public string TextField { get; }

    public override string Separator => separator;

    public override IEnumerable<string> ReadDocuments()
    {
        foreach (var (record, line) in JsonlRecords.Read(Path))
            yield return JsonlRecords.StringField(record, TextField, Path, line);
    }
}
