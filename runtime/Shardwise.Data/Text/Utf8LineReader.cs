using System;
using System.IO;
using System.Text;

namespace Shardwise.Data;

/// <summary>
/// Reads a UTF-8 file line by line, decoding each line on its own. StreamReader decodes whole buffers ahead of the
/// line being returned, so a bad byte on line 900 would surface while reading line 1; decoding per line is what lets
/// an invalid-UTF-8 error name the right line. Accepts "\n" and "\r\n" endings and skips a leading BOM.
/// </summary>
internal sealed class Utf8LineReader : IDisposable
{
    private static readonly Encoding Strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Stream stream;
    private readonly byte[] buffer = new byte[64 * 1024];
    private byte[] line = new byte[256];
    private int start;
    private int end;
    private bool atFileStart = true;

    public Utf8LineReader(string path) =>
        stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);

    /// <summary>The next line without its terminator, or null at end of file.</summary>
    /// <exception cref="DecoderFallbackException">The line is not valid UTF-8.</exception>
    public string? ReadLine()
    {
        var length = 0;
        var sawAny = false;
        while (true)
        {
            if (start == end && !Fill())
            {
                return sawAny ? Decode(length) : null;
            }

            sawAny = true;
            var chunk = buffer.AsSpan(start, end - start);
            var newline = chunk.IndexOf((byte)'\n');
            var take = newline < 0 ? chunk.Length : newline;
            Append(chunk[..take], ref length);
            start += newline < 0 ? take : take + 1;
            if (newline >= 0)
            {
                return Decode(length);
            }
        }
    }

    public void Dispose() => stream.Dispose();

    private bool Fill()
    {
        start = 0;
        end = stream.Read(buffer, 0, buffer.Length);
        if (atFileStart)
        {
            atFileStart = false;
            if (end >= 3 && buffer[0] == 0xEF && buffer[1] == 0xBB && buffer[2] == 0xBF)
            {
                start = 3;
            }
        }

        return end > start;
    }

    private void Append(ReadOnlySpan<byte> bytes, ref int length)
    {
        if (length + bytes.Length > line.Length)
        {
            Array.Resize(ref line, Math.Max(line.Length * 2, length + bytes.Length));
        }

        bytes.CopyTo(line.AsSpan(length));
        length += bytes.Length;
    }

    private string Decode(int length)
    {
        if (length > 0 && line[length - 1] == (byte)'\r')
        {
            length--;
        }

        return Strict.GetString(line, 0, length);
    }
}
