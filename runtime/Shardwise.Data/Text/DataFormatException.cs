using System;

namespace Shardwise.Data;

/// <summary>
/// A data file that cannot be read as promised. The message is <c>FILE:LINE: reason</c> (1-based line) so editors
/// and CI logs can jump to the offending line; reading stops at the first bad line rather than silently skipping
/// data, because a skipped document changes the token stream and therefore every later batch.
/// </summary>
public sealed class DataFormatException : Exception
{
    public DataFormatException(string file, long? line, string reason)
        : base(line is { } l ? $"{file}:{l}: {reason}" : $"{file}: {reason}")
    {
        File = file;
        Line = line;
        Reason = reason;
    }

    public DataFormatException(string file, long? line, string reason, Exception inner)
        : base(line is { } l ? $"{file}:{l}: {reason}" : $"{file}: {reason}", inner)
    {
        File = file;
        Line = line;
        Reason = reason;
    }

    /// <summary>The path as it was given to the reader.</summary>
    public string File { get; }

    /// <summary>1-based line of the failure; null when the failure has no single line (e.g. bad UTF-8 in a chunk).</summary>
    public long? Line { get; }

    public string Reason { get; }
}
