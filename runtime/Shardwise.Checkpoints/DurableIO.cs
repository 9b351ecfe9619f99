using System;
using System.IO;
using System.Linq;

namespace Shardwise.Checkpoints;

/// <summary>
/// The few durable-write primitives the checkpoint protocol is built from. "Durable" means fsync'd: data that
/// only reached the page cache can vanish on power loss even after a successful rename.
/// </summary>
internal static class DurableIO
{
    /// <summary>Creates or truncates <paramref name="path"/>, lets <paramref name="write"/> fill it, then fsyncs.</summary>
    public static void WriteFile(string path, Action<Stream> write)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);
        write(stream);
        stream.Flush(flushToDisk: true);
    }

    public static void WriteFile(string path, ReadOnlySpan<byte> contents)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1);
        stream.Write(contents);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>fsyncs a file some other code wrote (it may have skipped Flush(true)).</summary>
    public static void FlushFile(string path)
    {
        // Windows' FlushFileBuffers needs write access; Linux fsync works on a read-only descriptor either way.
        var access = OperatingSystem.IsWindows() ? FileAccess.ReadWrite : FileAccess.Read;
        using var handle = File.OpenHandle(path, FileMode.Open, access, FileShare.ReadWrite);
        RandomAccess.FlushToDisk(handle);
    }

    /// <summary>fsyncs every file and directory under <paramref name="root"/>, children before parents, then root.</summary>
    public static void FlushTree(string root)
    {
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
        {
            FlushFile(file);
        }

        foreach (var directory in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length))
        {
            DirectorySync.Flush(directory);
        }

        DirectorySync.Flush(root);
    }

    /// <summary>
    /// Replaces <paramref name="path"/> atomically: readers see the old contents or the new, never a mix. Write a
    /// sibling temp file, fsync it, rename over the target (rename(2) is atomic), fsync the directory.
    /// </summary>
    /// <param name="beforeRename">Test seam: runs after the temp file is durable, before it replaces the target.</param>
    public static void ReplaceFile(string path, ReadOnlySpan<byte> contents, string tempPath, Action? beforeRename = null)
    {
        WriteFile(tempPath, contents);
        beforeRename?.Invoke();
        File.Move(tempPath, path, overwrite: true);
        DirectorySync.Flush(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>Recursive delete that tolerates the directory already being gone.</summary>
    public static void DeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
