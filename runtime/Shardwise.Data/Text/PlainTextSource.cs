using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Shardwise.Data;

/// <summary>
/// UTF-8 plain text, yielded as chunks whose concatenation is exactly the file (line endings included). Chunks end
/// after a newline that is followed by non-whitespace, so a run of whitespace (which GPT-2's pre-tokenizer treats as
/// one piece) is never split across two encodes and chunked encoding matches whole-file encoding.
/// </summary>
public sealed class PlainTextSource : TextSource
{
    /// <summary>1M chars per chunk: large enough that the per-chunk cost is nothing, small enough to stream.</summary>
    public const int DefaultChunkChars = 1 << 20;

    public PlainTextSource(string path, int chunkChars = DefaultChunkChars)
        : base(path)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkChars, 2);
        ChunkChars = chunkChars;
    }

    public int ChunkChars { get; }

    /// <summary>Chunks are consecutive pieces of one text: joining them must add nothing.</summary>
    public override string Separator => string.Empty;

    public override IEnumerable<string> ReadDocuments()
    {
        using var reader = new StreamReader(Path, StrictUtf8, detectEncodingFromByteOrderMarks: true);
        var buffer = new char[ChunkChars];
        var filled = 0;
        long linesBefore = 0;
        while (true)
        {
            int read;
            try
            {
                read = reader.ReadBlock(buffer, filled, buffer.Length - filled);
            }
            catch (DecoderFallbackException e)
            {
                // The decoder works on blocks, so the exact line is unknown; say where the bad block starts.
                throw new DataFormatException(Path, null, $"invalid UTF-8 after line {linesBefore}", e);
            }

            filled += read;

            // ReadBlock only returns short at end of stream.
            if (filled < buffer.Length)
            {
                if (filled > 0)
                {
                    yield return new string(buffer, 0, filled);
                }

                yield break;
            }

            var cut = FindCut(buffer, filled);
            linesBefore += buffer.AsSpan(0, cut).Count('\n');
            yield return new string(buffer, 0, cut);
            Array.Copy(buffer, cut, buffer, 0, filled - cut);
            filled -= cut;
        }
    }

    /// <summary>End of the chunk (exclusive): after the last newline followed by non-whitespace, else the whole buffer.</summary>
    private static int FindCut(char[] buffer, int filled)
    {
        for (var i = filled - 2; i >= 0; i--)
        {
            if (buffer[i] == '\n' && !char.IsWhiteSpace(buffer[i + 1]))
            {
                return i + 1;
            }
        }

        // No good boundary: cut anywhere, but never between the halves of a surrogate pair.
        return char.IsHighSurrogate(buffer[filled - 1]) ? filled - 1 : filled;
    }
}
