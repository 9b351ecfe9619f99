using System;
using System.Collections.Generic;
using System.Text;
using System.Text.Json;

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
        using var reader = new Utf8LineReader(Path);
        long lineNumber = 0;
        while (true)
        {
            lineNumber++;
            string? line;
            try
            {
                line = reader.ReadLine();
            }
            catch (DecoderFallbackException e)
            {
                throw new DataFormatException(Path, lineNumber, "invalid UTF-8", e);
            }

            if (line is null)
            {
                yield break;
            }

            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            yield return ParseLine(line, lineNumber);
        }
    }

    private string ParseLine(string line, long lineNumber)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new DataFormatException(Path, lineNumber, $"invalid JSON: {e.Message}", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new DataFormatException(Path, lineNumber, $"expected a JSON object, found {Describe(root.ValueKind)}");
            }

            if (!root.TryGetProperty(TextField, out var field))
            {
                throw new DataFormatException(Path, lineNumber, $"missing field \"{TextField}\"");
            }

            if (field.ValueKind != JsonValueKind.String)
            {
                throw new DataFormatException(Path, lineNumber, $"field \"{TextField}\" must be a string, found {Describe(field.ValueKind)}");
            }

            return field.GetString()!;
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };
}
