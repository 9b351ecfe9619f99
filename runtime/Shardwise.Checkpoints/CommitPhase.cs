namespace Shardwise.Checkpoints;

/// <summary>
/// Points inside <see cref="CheckpointWriter.Commit"/> where tests inject a crash (via
/// <see cref="CheckpointStore.FaultInjector"/>) to prove the previous checkpoint survives each one.
/// </summary>
internal enum CommitPhase
{
    /// <summary>Every file and the COMPLETE marker are fsync'd in the temp directory; nothing renamed yet.</summary>
    FilesDurable,

    /// <summary>An existing directory with the same tag was renamed aside; the new one is not in place yet.</summary>
    ExistingMovedAside,

    /// <summary>The new directory has its final name; <c>latest</c> still names the previous tag.</summary>
    DirectoryRenamed,

    /// <summary>The new <c>latest</c> sits fsync'd in a temp file, not yet renamed over the old one.</summary>
    LatestTempWritten,
}
