using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Shardwise.Checkpoints;

/// <summary>
/// One save in progress, from <see cref="CheckpointStore.BeginSave"/>. Write the checkpoint's files into
/// <see cref="DirectoryPath"/> (a hidden temp directory), then <see cref="Commit"/>. Disposing without
/// committing throws the save away; the previous checkpoint and <c>latest</c> are untouched either way.
/// </summary>
public sealed class CheckpointWriter : IDisposable
{
    private readonly CheckpointStore _store;
    private readonly FileStream _storeLock;
    private readonly List<SafeTensorsWriter> _tensorFiles = [];
    private string? _asidePath;
    private bool _renamed;
    private bool _committed;
    private bool _disposed;

    internal CheckpointWriter(CheckpointStore store, string tag, string tempDirectory, FileStream storeLock)
    {
        _store = store;
        Tag = tag;
        DirectoryPath = tempDirectory;
        _storeLock = storeLock;
        FinalPath = Path.Combine(store.DirectoryPath, tag);
    }

    public string Tag { get; }

    /// <summary>The temp directory (<c>DIR/.tmp-TAG-GUID</c>) to write files into before commit.</summary>
    public string DirectoryPath { get; }

    /// <summary>Where the checkpoint will live once committed: <c>DIR/TAG</c>.</summary>
    public string FinalPath { get; }

    /// <summary>
    /// Path for <paramref name="fileName"/> inside the temp directory (subdirectories allowed and created),
    /// for callers that write with their own code. Anything written this way is fsync'd at commit.
    /// </summary>
    public string GetFilePath(string fileName)
    {
        ThrowIfFinished();
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        var full = Path.GetFullPath(Path.Combine(DirectoryPath, fileName));
        if (Path.IsPathRooted(fileName) || !full.StartsWith(DirectoryPath + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{fileName}' must be a relative path inside the checkpoint", nameof(fileName));
        }

        if (Path.GetRelativePath(DirectoryPath, full) == CompletionMarker.FileName)
        {
            throw new ArgumentException($"'{CompletionMarker.FileName}' is reserved for the commit marker", nameof(fileName));
        }

        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        return full;
    }

    /// <summary>Creates the file, lets <paramref name="write"/> fill the stream, then fsyncs it (Flush(true)).</summary>
    public void WriteFile(string fileName, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        DurableIO.WriteFile(GetFilePath(fileName), write);
    }

    public void WriteAllBytes(string fileName, ReadOnlySpan<byte> contents) => DurableIO.WriteFile(GetFilePath(fileName), contents);

    /// <summary>UTF-8 without a byte-order mark (what Python's json.load and tokenizers expect).</summary>
    public void WriteAllText(string fileName, string contents) => WriteAllBytes(fileName, Encoding.UTF8.GetBytes(contents));

    /// <summary>
    /// Starts a safetensors file in the checkpoint. Call <see cref="SafeTensorsWriter.Complete"/> on it before
    /// <see cref="Commit"/>; commit refuses while one is unfinished, so a file with holes cannot be committed.
    /// </summary>
    public SafeTensorsWriter CreateSafeTensors(string fileName, IEnumerable<SafeTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var writer = SafeTensorsWriter.Create(GetFilePath(fileName), tensors, metadata);
        _tensorFiles.Add(writer);
        return writer;
    }

    /// <summary>
    /// Makes the checkpoint durable and visible, in this order: fsync every file; write and fsync COMPLETE;
    /// fsync the temp directory; move any existing <c>DIR/TAG</c> aside; rename the temp directory to
    /// <c>DIR/TAG</c>; fsync DIR; replace <c>latest</c> atomically (when <paramref name="updateLatest"/>);
    /// delete the old version. A crash before the rename changes nothing visible; after it, the new
    /// checkpoint is complete and openable by tag even if <c>latest</c> was not yet updated.
    /// </summary>
    /// <returns>The committed directory, <c>DIR/TAG</c>.</returns>
    public string Commit(bool updateLatest = true)
    {
        ThrowIfFinished();
        var unfinished = _tensorFiles.Where(w => !w.IsCompleted).Select(w => w.FilePath).ToArray();
        if (unfinished.Length > 0)
        {
            throw new InvalidOperationException($"cannot commit '{Tag}': safetensors files not completed: {string.Join(", ", unfinished)}");
        }

        DurableIO.FlushTree(DirectoryPath);
        DurableIO.WriteFile(Path.Combine(DirectoryPath, CompletionMarker.FileName), CompletionMarker.Describe(DirectoryPath, Tag).ToJson());
        DirectorySync.Flush(DirectoryPath);
        _store.Inject(CommitPhase.FilesDurable);

        if (Directory.Exists(FinalPath))
        {
            // rename(2) cannot replace a non-empty directory, so overwriting takes two renames; recovery
            // (CheckpointStore.RecoverFromCrash / Open) handles a crash between them.
            _asidePath = _store.NewAsidePath(Tag);
            Directory.Move(FinalPath, _asidePath);
            _store.Inject(CommitPhase.ExistingMovedAside);
        }

        Directory.Move(DirectoryPath, FinalPath);
        _renamed = true;
        DirectorySync.Flush(_store.DirectoryPath);
        _store.Inject(CommitPhase.DirectoryRenamed);

        if (updateLatest)
        {
            _store.WriteLatest(Tag);
        }

        _committed = true;
        if (_asidePath is not null)
        {
            DurableIO.DeleteDirectory(_asidePath);
        }

        return FinalPath;
    }

    /// <summary>Without a commit: deletes the temp directory and puts back anything moved aside. Releases the lock.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            foreach (var tensorFile in _tensorFiles)
            {
                tensorFile.Dispose();
            }

            if (!_committed)
            {
                Abort();
            }
        }
        catch (IOException)
        {
            // Best effort: whatever is left is scratch that the next BeginSave recovers or deletes.
        }
        catch (UnauthorizedAccessException)
        {
        }
        finally
        {
            _storeLock.Dispose();
        }
    }

    /// <summary>
    /// Test seam: behave as if the process died right now. The kernel would close our handles and drop the
    /// lock, and no cleanup code would run, so this does exactly that and nothing else.
    /// </summary>
    internal void SimulateProcessDeath()
    {
        _disposed = true;
        foreach (var tensorFile in _tensorFiles)
        {
            tensorFile.ReleaseHandleOnly();
        }

        _storeLock.Dispose();
    }

    private void Abort()
    {
        if (!_renamed)
        {
            if (_asidePath is not null && !Directory.Exists(FinalPath))
            {
                Directory.Move(_asidePath, FinalPath);
                DirectorySync.Flush(_store.DirectoryPath);
            }

            DurableIO.DeleteDirectory(DirectoryPath);
        }
        else if (_asidePath is not null)
        {
            // The new checkpoint is complete under its final name, so the old version is superseded.
            DurableIO.DeleteDirectory(_asidePath);
        }
    }

    private void ThrowIfFinished()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed)
        {
            throw new InvalidOperationException($"checkpoint '{Tag}' is already committed");
        }
    }
}
