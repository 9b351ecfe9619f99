using System;
using System.Collections.Generic;
using System.Text;
using System.Text.Json;

namespace Shardwise.Data;

/// <summary>
/// The records of a JSON Lines file: one object per non-blank line, in file order, with its 1-based line number.
/// Anything that is not an object stops the read with <c>FILE:LINE: reason</c> (<see cref="DataFormatException"/>).
/// Shared by the JSONL sources, which differ only in the fields they take from each record.
/// </summary>
internal static class JsonlRecords
{
    /// <summary>Each record, parsed; the document is disposed when the enumeration moves on.</summary>
    public static IEnumerable<(JsonElement Record, long Line)> Read(string path)
    {
        using var reader = new Utf8LineReader(path);
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
                throw new DataFormatException(path, lineNumber, "invalid UTF-8", e);
            }

            if (line is null) yield break;
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var document = Parse(path, line, lineNumber);
            yield return (document.RootElement, lineNumber);
        }
    }

    /// <summary>The string in <paramref name="field"/> of a record, or a <c>FILE:LINE</c> error naming the field.</summary>
    public static string StringField(JsonElement record, string field, string path, long line)
    {
        if (!record.TryGetProperty(field, out var value))
            throw new DataFormatException(path, line, $"missing field \"{field}\"");
        if (value.ValueKind != JsonValueKind.String)
            throw new DataFormatException(path, line, $"field \"{field}\" must be a string, found {Describe(value.ValueKind)}");
        return value.GetString()!;
    }

    private static JsonDocument Parse(string path, string line, long lineNumber)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new DataFormatException(path, lineNumber, $"invalid JSON: {e.Message}", e);
        }

        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = document.RootElement.ValueKind;
            document.Dispose();
            throw new DataFormatException(path, lineNumber, $"expected a JSON object, found {Describe(kind)}");
        }

        return document;
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
