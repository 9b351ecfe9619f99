using System;
using System.IO;
using System.Text.Json;

namespace Shardwise.Data;

/// <summary>Reads any tokenizer written by <see cref="ITokenizer.Save"/>, choosing the type by its "kind".</summary>
public static class TokenizerFile
{
    public static ITokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a tokenizer file: {e.Message}", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("kind", out var kind)
                || kind.ValueKind != JsonValueKind.String)
            {
                throw new InvalidDataException($"{path}: a tokenizer file is an object with a string field \"kind\"");
            }

            return kind.GetString() switch
            {
                CharTokenizer.KindName => CharTokenizer.FromJson(root, path),
                Gpt2Tokenizer.KindName => new Gpt2Tokenizer(),
                var other => throw new InvalidDataException(
                    $"{path}: unknown tokenizer kind \"{other}\" (known: \"{CharTokenizer.KindName}\", \"{Gpt2Tokenizer.KindName}\")"),
            };
        }
    }
}
