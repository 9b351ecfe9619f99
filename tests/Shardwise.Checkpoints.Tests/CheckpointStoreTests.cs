using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Checkpoints.Tests;

[TestClass]
public sealed class CheckpointStoreTests
{
    private TempDirectory _dir = null!;
    private CheckpointStore _store = null!;

    [TestInitialize]
    public void Setup()
    {
        _dir = new TempDirectory();
        _store = new CheckpointStore(_dir.File("ckpt"));
    }

    [TestCleanup]
    public void Cleanup() => _dir.Dispose();

    [TestMethod]
    public void EmptyStore_HasNoLatest()
    {
        Assert.IsNull(_store.Latest);
        Assert.IsNull(_store.OpenLatest());
        Assert.AreEqual(0, _store.ListCommitted().Count);
        Assert.ThrowsExactly<CheckpointException>(() => _store.Open("step-000001"));
    }

    [TestMethod]
    public void Commit_PublishesDirectoryAndLatest_DeepSpeedStyle()
    {
        var checkpoint = TrainingCheckpoint.ForStep(120);
        using (var save = _store.BeginSave(checkpoint.Tag))
        {
            StringAssert.StartsWith(Path.GetFileName(save.DirectoryPath), ".tmp-step-000120-");
            Assert.AreEqual(_store.DirectoryPath, Path.GetDirectoryName(save.DirectoryPath));
            checkpoint.WriteAll(save);

            // Nothing is visible before commit.
            Assert.IsNull(_store.Latest);
            Assert.ThrowsExactly<CheckpointException>(() => _store.Open("step-000120"));

            Assert.AreEqual(Path.Combine(_store.DirectoryPath, "step-000120"), save.Commit());
        }

        Assert.AreEqual("step-000120", _store.Latest);
        Assert.AreEqual("step-000120", File.ReadAllText(Path.Combine(_store.DirectoryPath, "latest")), "bare tag, like DeepSpeed");
        var path = _store.OpenLatest()!;
        checkpoint.AssertStoredIn(path);
        CollectionAssert.AreEquivalent(
            new[] { "COMPLETE", "model.safetensors", "optimizer.safetensors", "state.json", "tokenizer.json" },
            Directory.GetFiles(path).Select(Path.GetFileName).ToArray());
        AssertNoScratch();
    }

    [TestMethod]
    public void SuccessiveSaves_MoveLatest_AndKeepOlderOpenable()
    {
        var first = TrainingCheckpoint.ForStep(100);
        var second = TrainingCheckpoint.ForStep(200);
        first.SaveTo(_store);
        second.SaveTo(_store);

        Assert.AreEqual(second.Tag, _store.Latest);
        first.AssertStoredIn(_store.Open(first.Tag));
        second.AssertStoredIn(_store.Open(second.Tag));
        CollectionAssert.AreEqual(new[] { first.Tag, second.Tag }, _store.ListCommitted().ToArray());
    }

    [TestMethod]
    public void CommitWithoutUpdatingLatest_LeavesPointerAlone()
    {
        TrainingCheckpoint.ForStep(1).SaveTo(_store);
        var side = TrainingCheckpoint.ForStep(2);
        using (var save = _store.BeginSave("best-eval"))
        {
            side.WriteAll(save);
            save.Commit(updateLatest: false);
        }

        Assert.AreEqual("step-000001", _store.Latest);
        side.AssertStoredIn(_store.Open("best-eval"));
    }

    [TestMethod]
    public void DisposeWithoutCommit_DiscardsEverything()
    {
        TrainingCheckpoint.ForStep(1).SaveTo(_store);
        using (var save = _store.BeginSave("step-000002"))
        {
            TrainingCheckpoint.ForStep(2).WriteAll(save);
        }

        Assert.AreEqual("step-000001", _store.Latest);
        Assert.IsFalse(Directory.Exists(Path.Combine(_store.DirectoryPath, "step-000002")));
        AssertNoScratch();
    }

    [TestMethod]
    public void OverwritingExistingTag_ReplacesItCompletely()
    {
        var old = TrainingCheckpoint.ForStep(5);
        old.SaveTo(_store);
        File.WriteAllText(Path.Combine(_store.Open(old.Tag), "stale-extra.txt"), "only in the old version");

        var replacement = TrainingCheckpoint.ForStep(50);
        using (var save = _store.BeginSave(old.Tag))
        {
            replacement.WriteAll(save);
            save.Commit();
        }

        var path = _store.Open(old.Tag);
        replacement.AssertStoredIn(path);
        Assert.IsFalse(File.Exists(Path.Combine(path, "stale-extra.txt")), "no files survive from the replaced version");
        Assert.AreEqual(old.Tag, _store.Latest);
        AssertNoScratch();
    }

    [TestMethod]
    public void Open_DetectsDamageAfterCommit()
    {
        var checkpoint = TrainingCheckpoint.ForStep(3);
        var path = checkpoint.SaveTo(_store);
        var model = Path.Combine(path, "model.safetensors");

        using (var stream = new FileStream(model, FileMode.Open))
        {
            stream.SetLength(stream.Length - 100);
        }

        var truncated = Assert.ThrowsExactly<CheckpointException>(() => _store.Open(checkpoint.Tag));
        StringAssert.Contains(truncated.Message, model);
        StringAssert.Contains(truncated.Message, "truncated");

        File.Delete(model);
        StringAssert.Contains(Assert.ThrowsExactly<CheckpointException>(() => _store.Open(checkpoint.Tag)).Message, "missing");

        File.Delete(Path.Combine(path, "COMPLETE"));
        StringAssert.Contains(Assert.ThrowsExactly<CheckpointException>(() => _store.Open(checkpoint.Tag)).Message, "never committed");
    }

    [TestMethod]
    public void DirectoriesTheStoreDidNotCommit_AreNeitherListedNorPruned()
    {
        var foreign = Path.Combine(_store.DirectoryPath, "global_step10");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "mp_rank_00_model_states.pt"), "deepspeed data");
        TrainingCheckpoint.ForStep(1).SaveTo(_store);
        TrainingCheckpoint.ForStep(2).SaveTo(_store);

        CollectionAssert.AreEqual(new[] { "step-000001", "step-000002" }, _store.ListCommitted().ToArray());
        Assert.ThrowsExactly<CheckpointException>(() => _store.Open("global_step10"));
        _store.Prune(keepLast: 1);
        Assert.IsTrue(Directory.Exists(foreign));
    }

    [TestMethod]
    public void Prune_KeepsNewestAndLatest()
    {
        foreach (var step in new[] { 1, 2, 3, 4 })
        {
            TrainingCheckpoint.ForStep(step).SaveTo(_store);
        }

        // A side checkpoint committed last, without moving latest: latest must survive pruning regardless.
        using (var save = _store.BeginSave("best-eval"))
        {
            TrainingCheckpoint.ForStep(9).WriteAll(save);
            save.Commit(updateLatest: false);
        }

        var deleted = _store.Prune(keepLast: 1);

        CollectionAssert.AreEqual(new[] { "step-000001", "step-000002", "step-000003" }, deleted.ToArray());
        CollectionAssert.AreEqual(new[] { "step-000004", "best-eval" }, _store.ListCommitted().ToArray());
        TrainingCheckpoint.ForStep(4).AssertStoredIn(_store.OpenLatest()!);
        AssertNoScratch();
    }

    [TestMethod]
    public void SecondConcurrentSave_IsRefused()
    {
        using (var save = _store.BeginSave("step-000001"))
        {
            var e = Assert.ThrowsExactly<CheckpointException>(() => _store.BeginSave("step-000002"));
            StringAssert.Contains(e.Message, "in progress");
            Assert.ThrowsExactly<CheckpointException>(() => _store.Prune(1));
        }

        using var next = _store.BeginSave("step-000002");
    }

    [TestMethod]
    public void CommitRefusesUnfinishedSafeTensorsFile()
    {
        using var save = _store.BeginSave("step-000001");
        var model = save.CreateSafeTensors("model.safetensors", [new SafeTensorSpec("w", SafeTensorDType.F32, 2)]);
        model.Write("w", [0.5f, 1.5f]);

        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => save.Commit()).Message, "model.safetensors");
        model.Complete();
        save.Commit();
        Assert.AreEqual("step-000001", _store.Latest);
    }

    [TestMethod]
    [DataRow("")]
    [DataRow(".hidden")]
    [DataRow("latest")]
    [DataRow("../escape")]
    [DataRow("a/b")]
    [DataRow("step 1")]
    public void InvalidTags_AreRejected(string tag) =>
        Assert.ThrowsExactly<ArgumentException>(() => _store.BeginSave(tag).Dispose());

    [TestMethod]
    public void FileNamesOutsideTheCheckpoint_AreRejected()
    {
        using var save = _store.BeginSave("step-000001");
        Assert.ThrowsExactly<ArgumentException>(() => save.GetFilePath("../escape.txt"));
        Assert.ThrowsExactly<ArgumentException>(() => save.GetFilePath("/etc/passwd"));
        Assert.ThrowsExactly<ArgumentException>(() => save.GetFilePath("COMPLETE"));
        save.WriteAllText("shards/rank-0.json", "{\"rank\":0}");
        save.Commit();
        Assert.AreEqual("{\"rank\":0}", File.ReadAllText(Path.Combine(_store.Open("step-000001"), "shards", "rank-0.json")));
    }

    [TestMethod]
    public void LatestWithTrailingNewline_FromHandEdit_IsAccepted()
    {
        TrainingCheckpoint.ForStep(7).SaveTo(_store);
        File.WriteAllText(Path.Combine(_store.DirectoryPath, "latest"), "step-000007\n");
        Assert.AreEqual("step-000007", _store.Latest);

        File.WriteAllText(Path.Combine(_store.DirectoryPath, "latest"), "../../etc");
        Assert.ThrowsExactly<CheckpointException>(() => _store.Latest);
    }

    [TestMethod]
    public void StepTags_AreZeroPadded() => Assert.AreEqual("step-000120", CheckpointTag.ForStep(120));

    private void AssertNoScratch() =>
        Assert.AreEqual(
            string.Empty,
            string.Join(", ", Directory.EnumerateFileSystemEntries(_store.DirectoryPath).Select(Path.GetFileName).Where(n => n!.StartsWith('.') && n != ".lock")));
}
