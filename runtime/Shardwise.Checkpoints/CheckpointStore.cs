using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Shardwise.Checkpoints;

/// <summary>
/// A directory of checkpoints laid out like DeepSpeed's (<c>DIR/&lt;tag&gt;/...</c> plus a <c>DIR/latest</c> text
/// file naming the newest tag), but committed atomically: a save is built in a hidden temp directory and
/// renamed into place only once every byte is fsync'd, then <c>latest</c> is replaced by rename. A crash at
/// any point leaves <c>latest</c> naming a complete checkpoint. See docs/checkpoints.md.
/// <para>One process saves at a time (enforced with a lock file); any number may read.</para>
/// </summary>
public sealed class CheckpointStore
{
    public const string LatestFileName = "latest";

    internal const string TempPrefix = ".tmp-";
    internal const string ReplacedPrefix = ".replaced-";
    internal const string DeletingPrefix = ".deleting-";
    internal const string LatestTempPrefix = ".latest-";
    private const string LockFileName = ".lock";

    /// <summary>Length of "-" + Guid.ToString("N"), the suffix that makes scratch names unique.</summary>
    private const int UniqueSuffixLength = 33;

    /// <summary>Creates <paramref name="directory"/> if it does not exist.</summary>
    public CheckpointStore(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        DirectoryPath = Path.GetFullPath(directory);
        Directory.CreateDirectory(DirectoryPath);
    }

    public string DirectoryPath { get; }

    /// <summary>
    /// The tag named by <c>DIR/latest</c>, or null if nothing was ever committed. Only ever names a checkpoint
    /// whose commit finished; scratch directories left by a crash are invisible here.
    /// </summary>
    public string? Latest
    {
        get
        {
            var path = Path.Combine(DirectoryPath, LatestFileName);
            if (!File.Exists(path))
            {
                return null;
            }

            // DeepSpeed writes the bare tag and strips on read; accept a trailing newline from hand edits.
            var tag = File.ReadAllText(path, Encoding.UTF8).Trim();
            return CheckpointTag.IsValid(tag)
                ? tag
                : throw new CheckpointException($"{path}: names '{tag}', which is not a valid checkpoint tag");
        }
    }

    /// <summary>Test seam: called at each <see cref="CommitPhase"/>; throwing from it simulates a crash there.</summary>
    internal Action<CommitPhase>? FaultInjector { get; set; }

    /// <summary>
    /// Starts a save: takes the store's lock, cleans up scratch left by any earlier crash, and creates an empty
    /// temp directory for the caller to fill. Nothing is visible until <see cref="CheckpointWriter.Commit"/>.
    /// </summary>
    /// <exception cref="CheckpointException">Another save or prune holds the lock.</exception>
    public CheckpointWriter BeginSave(string tag)
    {
        CheckpointTag.Validate(tag);
        var storeLock = AcquireLock();
        try
        {
            RecoverFromCrash();
            var temp = Path.Combine(DirectoryPath, $"{TempPrefix}{tag}-{Guid.NewGuid():N}");
            Directory.CreateDirectory(temp);
            return new CheckpointWriter(this, tag, temp, storeLock);
        }
        catch
        {
            storeLock.Dispose();
            throw;
        }
    }

    /// <summary>The directory of a committed checkpoint, after checking its COMPLETE marker and file sizes.</summary>
    /// <exception cref="CheckpointException">No such checkpoint, or it is incomplete or damaged.</exception>
    public string Open(string tag)
    {
        CheckpointTag.Validate(tag);
        var path = Path.Combine(DirectoryPath, tag);
        if (!Directory.Exists(path))
        {
            // A crash while overwriting this tag can leave the committed old version renamed aside; it is still
            // the right data (the new one never committed), and the next save moves it back.
            var aside = FindCompleteAside(tag);
            return aside ?? throw new CheckpointException($"{path}: no checkpoint with tag '{tag}'");
        }

        CompletionMarker.Verify(path, tag);
        return path;
    }

    /// <summary>The directory of the <see cref="Latest"/> checkpoint (validated as by <see cref="Open"/>), or null.</summary>
    public string? OpenLatest() => Latest is { } tag ? Open(tag) : null;

    /// <summary>Committed tags, oldest commit first. Directories without a COMPLETE marker are not listed.</summary>
    public IReadOnlyList<string> ListCommitted() =>
        Directory.EnumerateDirectories(DirectoryPath)
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(CheckpointTag.IsValid)
            .Select(tag => (Tag: tag, Marker: TryReadMarker(Path.Combine(DirectoryPath, tag), tag)))
            .Where(entry => entry.Marker is not null)
            .OrderBy(entry => entry.Marker!.CommittedUtc)
            .ThenBy(entry => entry.Tag, StringComparer.Ordinal)
            .Select(entry => entry.Tag)
            .ToArray();

    /// <summary>
    /// Deletes all but the <paramref name="keepLast"/> most recently committed checkpoints. The one named by
    /// <c>latest</c> is always kept; directories this store did not commit are never touched.
    /// </summary>
    /// <returns>The tags deleted.</returns>
    public IReadOnlyList<string> Prune(int keepLast)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keepLast, 1);
        using var storeLock = AcquireLock();
        RecoverFromCrash();
        var committed = ListCommitted();
        var latest = Latest;
        var doomed = committed.Take(Math.Max(0, committed.Count - keepLast)).Where(tag => tag != latest).ToArray();
        foreach (var tag in doomed)
        {
            // Rename first so a crash mid-delete leaves scratch (cleaned later), not a half-deleted checkpoint.
            var deleting = Path.Combine(DirectoryPath, $"{DeletingPrefix}{tag}-{Guid.NewGuid():N}");
            Directory.Move(Path.Combine(DirectoryPath, tag), deleting);
            DirectorySync.Flush(DirectoryPath);
            DurableIO.DeleteDirectory(deleting);
        }

        return doomed;
    }

    internal void Inject(CommitPhase phase) => FaultInjector?.Invoke(phase);

    /// <summary>Points <c>latest</c> at <paramref name="tag"/>: temp file, fsync, rename over, fsync directory.</summary>
    internal void WriteLatest(string tag)
    {
        var temp = Path.Combine(DirectoryPath, $"{LatestTempPrefix}{Guid.NewGuid():N}");
        DurableIO.ReplaceFile(
            Path.Combine(DirectoryPath, LatestFileName),
            Encoding.UTF8.GetBytes(tag),
            temp,
            beforeRename: () => Inject(CommitPhase.LatestTempWritten));
    }

    internal string NewAsidePath(string tag) => Path.Combine(DirectoryPath, $"{ReplacedPrefix}{tag}-{Guid.NewGuid():N}");

    /// <summary>
    /// Undoes what a crash left behind. Temp save directories, half-deleted checkpoints and temp <c>latest</c>
    /// files are garbage. A <c>.replaced-TAG-*</c> directory is the old version of an overwritten tag: garbage
    /// if TAG is in place, otherwise the crash hit between the two renames and it is moved back.
    /// Must run under the lock, so it cannot delete the temp directory of a save in progress.
    /// </summary>
    private void RecoverFromCrash()
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(DirectoryPath).ToArray())
        {
            var name = Path.GetFileName(entry);
            if (name.StartsWith(TempPrefix, StringComparison.Ordinal) || name.StartsWith(DeletingPrefix, StringComparison.Ordinal))
            {
                DurableIO.DeleteDirectory(entry);
            }
            else if (name.StartsWith(LatestTempPrefix, StringComparison.Ordinal))
            {
                File.Delete(entry);
            }
            else if (name.StartsWith(ReplacedPrefix, StringComparison.Ordinal))
            {
                var tag = TagOfAside(name);
                var final = tag is null ? null : Path.Combine(DirectoryPath, tag);
                if (final is not null && !Directory.Exists(final) && TryReadMarker(entry, tag!) is not null)
                {
                    Directory.Move(entry, final);
                    DirectorySync.Flush(DirectoryPath);
                }
                else
                {
                    DurableIO.DeleteDirectory(entry);
                }
            }
        }
    }

    private string? FindCompleteAside(string tag) =>
        Directory.EnumerateDirectories(DirectoryPath, ReplacedPrefix + "*")
            .FirstOrDefault(dir => TagOfAside(Path.GetFileName(dir)) == tag && TryVerify(dir, tag));

    private static string? TagOfAside(string name)
    {
        var length = name.Length - ReplacedPrefix.Length - UniqueSuffixLength;
        return length > 0 ? name.Substring(ReplacedPrefix.Length, length) : null;
    }

    private static CompletionMarker? TryReadMarker(string directory, string tag)
    {
        try
        {
            var marker = CompletionMarker.Read(directory);
            return marker.Tag == tag ? marker : null;
        }
        catch (CheckpointException)
        {
            return null;
        }
    }

    private static bool TryVerify(string directory, string tag)
    {
        try
        {
            CompletionMarker.Verify(directory, tag);
            return true;
        }
        catch (CheckpointException)
        {
            return false;
        }
    }

    /// <summary>
    /// An exclusive lock on DIR/.lock for the duration of a save or prune. FileShare.None is an OS lock
    /// (flock on Unix, a share mode on Windows), released by the kernel if the process dies.
    /// </summary>
    private FileStream AcquireLock()
    {
        var path = Path.Combine(DirectoryPath, LockFileName);
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new CheckpointException($"{path}: another save or prune is in progress on this store ({e.Message})");
        }
    }
}
