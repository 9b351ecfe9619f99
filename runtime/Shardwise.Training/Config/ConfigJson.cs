using System;
using System.Text;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// Turns config text into a JsonDocument. Comments and trailing commas are accepted because real
/// DeepSpeed configs carry them; anything else malformed becomes a <see cref="ConfigException"/> with a
/// 1-based line and a character (not byte) column, plus a hint for the breakage seen in practice.
/// </summary>
internal static class ConfigJson
{
    private static readonly JsonDocumentOptions Options = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    public static JsonDocument Parse(string text, string sourceName)
    {
        try
        {
            return JsonDocument.Parse(text, Options);
        }
        catch (JsonException e)
        {
            var lineIndex = (int)(e.LineNumber ?? 0);
            var lineText = LineAt(text, lineIndex);
            var column = CharacterColumn(lineText, (int)(e.BytePositionInLine ?? 0));
            var detail = WithoutPositionSuffix(e.Message) + Hint(lineText, column, e.Message);
            throw new ConfigException(sourceName, lineIndex + 1, column + 1, detail, e);
        }
    }

    private static string LineAt(string text, int lineIndex)
    {
        var lines = text.Split('\n');
        return lineIndex < lines.Length ? lines[lineIndex].TrimEnd('\r') : string.Empty;
    }

    /// <summary>System.Text.Json reports a UTF-8 byte offset; editors count characters.</summary>
    private static int CharacterColumn(string line, int byteOffset)
    {
        var bytes = 0;
        var chars = 0;
        foreach (var rune in line.EnumerateRunes())
        {
            if (bytes >= byteOffset)
            {
                break;
            }

            bytes += rune.Utf8SequenceLength;
            chars += rune.Utf16SequenceLength;
        }

        return chars;
    }

    private static string WithoutPositionSuffix(string message)
    {
        var index = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (index >= 0 ? message[..index] : message).TrimEnd();
    }

    private static string Hint(string line, int column, string message)
    {
        var word = WordAt(line, column);
        if (word is "True" or "False" or "None")
        {
            var json = word == "None" ? "null" : word.ToLowerInvariant();
            return $" (Python literal {word}: JSON spells it {json})";
        }

        if (word.Length > 0 && char.IsLetter(word[0]))
        {
            return $" (unquoted word \"{word}\": JSON strings need quotes; an unfilled template placeholder?)";
        }

        // A ':' right after a complete value can only mean the root was a bare "key": value list.
        if (message.StartsWith("':' is invalid after a single JSON value", StringComparison.Ordinal))
        {
            return " (the file looks like object members without the enclosing { })";
        }

        if (message.Contains("Expected either ','", StringComparison.Ordinal))
        {
            return " (a comma is probably missing at the end of the previous member)";
        }

        return string.Empty;
    }

    private static string WordAt(string line, int column)
    {
        var builder = new StringBuilder();
        for (var i = column; i < line.Length && (char.IsLetterOrDigit(line[i]) || line[i] == '_'); i++)
        {
            builder.Append(line[i]);
        }

        return builder.ToString();
    }
}
