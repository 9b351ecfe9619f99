using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Checkpoints.Tests;

/// <summary>
/// Crashes simulated at every point of a save. "Process death" releases handles and the lock and runs no
/// cleanup (CheckpointWriter.SimulateProcessDeath); "exception" lets the writer's Dispose run. After each,
/// <c>latest</c> must name a complete checkpoint whose files read back exactly as saved.
/// </summary>
[TestClass]
public sealed class CheckpointCrashTests
{
    private TempDirectory _dir = null!;
    private CheckpointStore _store = null!;
    private TrainingCheckpoint _previous = null!;

    [TestInitialize]
    public void Setup()
    {
        _dir = new TempDirectory();
        _store = new CheckpointStore(_dir.File("ckpt"));
        _previous = TrainingCheckpoint.ForStep(1);
        _previous.SaveTo(_store);
    }

    [TestCleanup]
    public void Cleanup() => _dir.Dispose();

    [TestMethod]
    public void ProcessDiesBetweenModelAndOptimizerFiles()
    {
        var next = TrainingCheckpoint.ForStep(2);
        var save = _store.BeginSave(next.Tag);
        next.WriteModel(save);
        save.SimulateProcessDeath();

        AssertPreviousIsLatestAndIntact();
        Assert.AreEqual(1, Scratch().Length, "the dead save's temp directory is left behind");
        Assert.ThrowsExactly<CheckpointException>(() => _store.Open(next.Tag));

        AssertNextSaveSucceedsAndCleansUp(TrainingCheckpoint.ForStep(2));
    }

    [TestMethod]
    public void ProcessDiesHalfWayThroughASafeTensorsFile()
    {
        var next = TrainingCheckpoint.ForStep(2);
        var save = _store.BeginSave(next.Tag);
        var model = save.CreateSafeTensors("model.safetensors", [new SafeTensorSpec("a", SafeTensorDType.F32, 3), new SafeTensorSpec("b", SafeTensorDType.F32, 3)]);
        model.Write("a", [1f, 2f, 3f]);
        save.SimulateProcessDeath();

        AssertPreviousIsLatestAndIntact();
        AssertNextSaveSucceedsAndCleansUp(next);
    }

    [TestMethod]
    public void ExceptionBetweenFiles_DisposeDiscardsTheSave()
    {
        var next = TrainingCheckpoint.ForStep(2);
        Assert.ThrowsExactly<IOException>(() =>
        {
            using var save = _store.BeginSave(next.Tag);
            next.WriteModel(save);
            throw new IOException("disk full while writing optimizer.safetensors");
        });

        AssertPreviousIsLatestAndIntact();
        Assert.AreEqual(0, Scratch().Length);
        AssertNextSaveSucceedsAndCleansUp(next);
    }

    [TestMethod]
    [DataRow(nameof(CommitPhase.FilesDurable), false)]
    [DataRow(nameof(CommitPhase.DirectoryRenamed), false)]
    [DataRow(nameof(CommitPhase.LatestTempWritten), false)]
    [DataRow(nameof(CommitPhase.FilesDurable), true)]
    [DataRow(nameof(CommitPhase.DirectoryRenamed), true)]
    [DataRow(nameof(CommitPhase.LatestTempWritten), true)]
    public void CrashInsideCommit_LatestStillNamesPreviousCheckpoint(string phaseName, bool processDies)
    {
        var phase = Enum.Parse<CommitPhase>(phaseName);
        var next = TrainingCheckpoint.ForStep(2);
        CrashCommit(next.Tag, next, phase, processDies);

        AssertPreviousIsLatestAndIntact();
        if (phase >= CommitPhase.DirectoryRenamed)
        {
            // The rename is the commit point: the new checkpoint is complete and can be opened by tag,
            // but resuming from "latest" still picks the previous one until the pointer is replaced.
            next.AssertStoredIn(_store.Open(next.Tag));
        }
        else
        {
            Assert.ThrowsExactly<CheckpointException>(() => _store.Open(next.Tag));
        }

        AssertNextSaveSucceedsAndCleansUp(TrainingCheckpoint.ForStep(3));
        _previous.AssertStoredIn(_store.Open(_previous.Tag));
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void CrashBetweenTheTwoRenamesOfAnOverwrite_OldVersionSurvives(bool processDies)
    {
        // Overwrite the tag "latest" points at; crash after the old directory moved aside, before the new one
        // took its name. This is the only moment the tag's directory does not exist.
        var replacement = TrainingCheckpoint.ForStep(1000);
        CrashCommit(_previous.Tag, replacement, CommitPhase.ExistingMovedAside, processDies);

        AssertPreviousIsLatestAndIntact();
        if (processDies)
        {
            Assert.IsFalse(Directory.Exists(Path.Combine(_store.DirectoryPath, _previous.Tag)), "served from the aside copy");
            _store.BeginSave("step-000002").Dispose();   // the next save's recovery moves it back
        }

        Assert.AreEqual(Path.Combine(_store.DirectoryPath, _previous.Tag), _store.Open(_previous.Tag));
        AssertPreviousIsLatestAndIntact();
        AssertNextSaveSucceedsAndCleansUp(TrainingCheckpoint.ForStep(2));
    }

    [TestMethod]
    public void CrashAfterOverwriteRename_NewVersionIsCompleteUnderTheTag()
    {
        var replacement = TrainingCheckpoint.ForStep(1000);
        CrashCommit(_previous.Tag, replacement, CommitPhase.DirectoryRenamed, processDies: true);

        Assert.AreEqual(_previous.Tag, _store.Latest);
        replacement.AssertStoredIn(_store.OpenLatest()!);
        Assert.AreEqual(1, Scratch().Length, "the replaced version waits for cleanup");
        AssertNextSaveSucceedsAndCleansUp(TrainingCheckpoint.ForStep(2));
    }

    [TestMethod]
    public void LeftoverScratch_IsIgnoredByReaders_AndCleanedByNextSave()
    {
        var root = _store.DirectoryPath;
        var temp = Path.Combine(root, $".tmp-step-000009-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        File.WriteAllText(Path.Combine(temp, "model.safetensors"), "half written");
        File.WriteAllText(Path.Combine(temp, "COMPLETE"), "{}");
        File.WriteAllText(Path.Combine(root, $".latest-{Guid.NewGuid():N}"), "step-000009");
        Directory.CreateDirectory(Path.Combine(root, $".deleting-step-000000-{Guid.NewGuid():N}"));
        Directory.CreateDirectory(Path.Combine(root, $".replaced-{_previous.Tag}-{Guid.NewGuid():N}"));

        AssertPreviousIsLatestAndIntact();
        CollectionAssert.AreEqual(new[] { _previous.Tag }, _store.ListCommitted().ToArray());
        Assert.ThrowsExactly<CheckpointException>(() => _store.Open("step-000009"));

        AssertNextSaveSucceedsAndCleansUp(TrainingCheckpoint.ForStep(2));
        _previous.AssertStoredIn(_store.Open(_previous.Tag));
    }

    /// <summary>Saves <paramref name="contents"/> under <paramref name="tag"/>, crashing at <paramref name="phase"/>.</summary>
    private void CrashCommit(string tag, TrainingCheckpoint contents, CommitPhase phase, bool processDies)
    {
        _store.FaultInjector = p =>
        {
            if (p == phase)
            {
                throw new SimulatedCrashException(phase);
            }
        };
        var save = _store.BeginSave(tag);
        try
        {
            contents.WriteAll(save);
            Assert.ThrowsExactly<SimulatedCrashException>(() => save.Commit());
        }
        finally
        {
            _store.FaultInjector = null;
            if (processDies)
            {
                save.SimulateProcessDeath();
            }
            else
            {
                save.Dispose();
            }
        }
    }

    private void AssertPreviousIsLatestAndIntact()
    {
        Assert.AreEqual(_previous.Tag, _store.Latest);
        _previous.AssertStoredIn(_store.OpenLatest()!);
    }

    private void AssertNextSaveSucceedsAndCleansUp(TrainingCheckpoint next)
    {
        next.SaveTo(_store);
        Assert.AreEqual(next.Tag, _store.Latest);
        next.AssertStoredIn(_store.OpenLatest()!);
        CollectionAssert.AreEqual(Array.Empty<string>(), Scratch());
    }

    private string[] Scratch() =>
        Directory.EnumerateFileSystemEntries(_store.DirectoryPath).Select(Path.GetFileName).OfType<string>()
            .Where(n => n.StartsWith('.') && n != ".lock").ToArray();

    private sealed class SimulatedCrashException(CommitPhase phase) : Exception($"simulated crash at {phase}");
}
