using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace Shardwise.Checkpoints;

/// <summary>
/// The COMPLETE file: written last into the temp directory, before it is renamed into place. The rename is
/// what commits, so the marker is belt and braces: it also lists every file with its size, which catches a
/// checkpoint directory that was truncated or partly deleted after the fact (copied by hand, disk trouble).
/// </summary>
internal sealed record CompletionMarker(string Tag, DateTimeOffset CommittedUtc, IReadOnlyList<(string Path, long Bytes)> Files)
{
    public const string FileName = "COMPLETE";
    private const string Format = "shardwise-checkpoint-v1";

    /// <summary>Describes the files now in <paramref name="directory"/> (paths relative, '/'-separated).</summary>
    public static CompletionMarker Describe(string directory, string tag)
    {
        var files = Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Select(f => (Path: Path.GetRelativePath(directory, f).Replace('\\', '/'), Bytes: new FileInfo(f).Length))
            .Where(f => f.Path != FileName)
            .OrderBy(f => f.Path, StringComparer.Ordinal)
            .ToArray();
        return new CompletionMarker(tag, DateTimeOffset.UtcNow, files);
    }

    public byte[] ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("format", Format);
            json.WriteString("tag", Tag);
            json.WriteString("committed_utc", CommittedUtc.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            json.WriteStartArray("files");
            foreach (var (path, bytes) in Files)
            {
                json.WriteStartObject();
                json.WriteString("path", path);
                json.WriteNumber("bytes", bytes);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>Reads the marker in <paramref name="directory"/>, or explains why it cannot be used.</summary>
    public static CompletionMarker Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            throw new CheckpointException($"{directory}: no {FileName} marker, so this save never committed");
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            if (root.GetProperty("format").GetString() != Format)
            {
                throw new CheckpointException($"{path}: unknown format '{root.GetProperty("format").GetString()}'");
            }

            var files = root.GetProperty("files").EnumerateArray()
                .Select(f => (f.GetProperty("path").GetString()!, f.GetProperty("bytes").GetInt64()))
                .ToArray();
            var committed = DateTimeOffset.Parse(root.GetProperty("committed_utc").GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            return new CompletionMarker(root.GetProperty("tag").GetString()!, committed, files);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{path}: unreadable {FileName} marker ({e.Message})");
        }
    }

    /// <summary>Throws unless <paramref name="directory"/> holds a marker for <paramref name="tag"/> whose files are all present at their recorded sizes.</summary>
    public static CompletionMarker Verify(string directory, string tag)
    {
        var marker = Read(directory);
        if (marker.Tag != tag)
        {
            throw new CheckpointException($"{directory}: {FileName} marker is for tag '{marker.Tag}', expected '{tag}'");
        }

        foreach (var (relative, bytes) in marker.Files)
        {
            var file = new FileInfo(Path.Combine(directory, relative));
            if (!file.Exists)
            {
                throw new CheckpointException($"{file.FullName}: listed in {FileName} but missing");
            }

            if (file.Length != bytes)
            {
                throw new CheckpointException($"{file.FullName}: {file.Length} bytes, but {FileName} recorded {bytes} (truncated or modified)");
            }
        }

        return marker;
    }
}
