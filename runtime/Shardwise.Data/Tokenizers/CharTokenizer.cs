using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Text.Json;

namespace Shardwise.Data;

/// <summary>
/// nanoGPT's character-level tokenizer: the vocabulary is the sorted set of distinct characters in the data and a
/// character's id is its rank. "Character" means Unicode code point (like a Python str), so text outside the BMP
/// is one symbol, not two surrogates; sorting is by code point, which matches Python's <c>sorted(set(text))</c>.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    public const string KindName = "char";

    private readonly Rune[] symbols;
    private readonly Dictionary<int, int> idOf;

    /// <summary>Vocabulary from the given characters (duplicates collapse, order is irrelevant).</summary>
    public CharTokenizer(IEnumerable<Rune> characters)
    {
        ArgumentNullException.ThrowIfNull(characters);
        var set = new SortedSet<int>();
        foreach (var rune in characters)
        {
            set.Add(rune.Value);
        }

        if (set.Count == 0)
        {
            throw new ArgumentException("a character vocabulary needs at least one character", nameof(characters));
        }

        symbols = new Rune[set.Count];
        idOf = new Dictionary<int, int>(set.Count);
        var id = 0;
        foreach (var value in set)
        {
            symbols[id] = new Rune(value);
            idOf.Add(value, id);
            id++;
        }
    }

    public int VocabularySize => symbols.Length;

    public string Kind => KindName;

    /// <summary>The vocabulary in id order, as one string.</summary>
    public string Symbols
    {
        get
        {
            var builder = new StringBuilder(symbols.Length);
            foreach (var rune in symbols)
            {
                builder.Append(rune.ToString());
            }

            return builder.ToString();
        }
    }

    /// <summary>Vocabulary of every character in the source, plus the separator that joins its documents.</summary>
    public static CharTokenizer Build(TextSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var seen = new HashSet<Rune>();
        AddRunes(source.Separator, seen, source.Path);
        foreach (var document in source.ReadDocuments())
        {
            AddRunes(document, seen, source.Path);
        }

        return new CharTokenizer(seen);
    }

    /// <summary>Vocabulary of the characters of <paramref name="text"/>.</summary>
    public static CharTokenizer FromText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var seen = new HashSet<Rune>();
        AddRunes(text, seen, "text");
        return new CharTokenizer(seen);
    }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        var index = 0;
        foreach (var rune in EnumerateStrict(text, "text"))
        {
            if (!idOf.TryGetValue(rune.Value, out var id))
            {
                throw new ArgumentException(
                    $"character {Show(rune)} (U+{rune.Value:X4}) at index {index} is not in the {symbols.Length}-symbol vocabulary",
                    nameof(text));
            }

            ids.Add(id);
            index += rune.Utf16SequenceLength;
        }

        return ids.ToArray();
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var builder = new StringBuilder(ids.Length);
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)symbols.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside the {symbols.Length}-symbol vocabulary");
            }

            builder.Append(symbols[id].ToString());
        }

        return builder.ToString();
    }

    /// <summary>Writes <c>{"kind":"char","chars":"..."}</c>: the chars string alone fixes every id.</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.Create(path);
        using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        writer.WriteStartObject();
        writer.WriteString("kind", KindName);
        writer.WriteString("chars", Symbols);
        writer.WriteEndObject();
    }

    /// <summary>Rebuilds from the saved object; the chars must be distinct and sorted so ids cannot silently shift.</summary>
    internal static CharTokenizer FromJson(JsonElement root, string path)
    {
        if (!root.TryGetProperty("chars", out var chars) || chars.ValueKind != JsonValueKind.String)
        {
            throw new InvalidDataException($"{path}: a char tokenizer needs a string field \"chars\"");
        }

        var text = chars.GetString()!;
        var runes = new List<Rune>();
        foreach (var rune in EnumerateStrict(text, path))
        {
            if (runes.Count > 0 && runes[^1].Value >= rune.Value)
            {
                throw new InvalidDataException($"{path}: \"chars\" must be distinct and sorted by code point; {Show(rune)} (U+{rune.Value:X4}) is out of order");
            }

            runes.Add(rune);
        }

        return new CharTokenizer(runes);
    }

    private static void AddRunes(string text, HashSet<Rune> seen, string where)
    {
        foreach (var rune in EnumerateStrict(text, where))
        {
            seen.Add(rune);
        }
    }

    /// <summary>Runes of the text; a lone surrogate is an error, not a symbol.</summary>
    private static IEnumerable<Rune> EnumerateStrict(string text, string where)
    {
        var index = 0;
        while (index < text.Length)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(index), out var rune, out var consumed) != System.Buffers.OperationStatus.Done)
            {
                throw new ArgumentException($"{where}: invalid UTF-16 (lone surrogate U+{(int)text[index]:X4}) at index {index}");
            }

            yield return rune;
            index += consumed;
        }
    }

    /// <summary>Control characters are shown escaped so the message stays on one readable line.</summary>
    private static string Show(Rune rune) => rune.Value switch
    {
        '\n' => "'\\n'",
        '\r' => "'\\r'",
        '\t' => "'\\t'",
        _ when Rune.IsControl(rune) => "(control)",
        _ => $"'{rune}'",
    };
}
