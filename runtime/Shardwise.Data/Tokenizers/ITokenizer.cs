using System;

namespace Shardwise.Data;

/// <summary>Text ⇄ token ids. Every implementation can be saved next to a checkpoint and reloaded with <see cref="TokenizerFile.Load"/>.</summary>
public interface ITokenizer
{
    /// <summary>Number of distinct ids; every id from <see cref="Encode"/> is in [0, VocabularySize).</summary>
    int VocabularySize { get; }

    /// <summary>Short stable name written into saved files ("char", "gpt2").</summary>
    string Kind { get; }

    int[] Encode(string text);

    string Decode(ReadOnlySpan<int> ids);

    /// <summary>Writes a JSON file that <see cref="TokenizerFile.Load"/> turns back into an equal tokenizer.</summary>
    void Save(string path);
}
