using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Progress;
using Shardwise.Tests.Shared;

namespace Shardwise.Training.Tests;

/// <summary>
/// TensorBoard event files as TensorFlow reads them, checked by an independent reader here: TFRecord framing with
/// masked CRC-32C (a bitwise CRC, not the writer's), and Event / Summary protocol buffers decoded field by field.
/// </summary>
[TestClass]
public sealed class TensorBoardEventWriterTests
{
    [TestMethod]
    public void Crc32CIsCastagnolis()
    {
        Assert.AreEqual(0xE3069283u, TensorBoardEventWriter.Crc32C(Encoding.ASCII.GetBytes("123456789")), "the standard check value");
        var random = new Random(3);
        foreach (int length in new[] { 0, 1, 7, 8, 9, 100, 1000 })
        {
            var bytes = new byte[length];
            random.NextBytes(bytes);
            Assert.AreEqual(TensorBoardFiles.BitwiseCrc32C(bytes), TensorBoardEventWriter.Crc32C(bytes), $"{length} bytes");
        }
    }

    [TestMethod]
    public void ScalarsReadBackThroughAnIndependentDecoder()
    {
        string directory = Directory.CreateTempSubdirectory("shardwise-tb-").FullName;
        var now = new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
        string path;
        using (var writer = TensorBoardEventWriter.Create(directory, now))
        {
            path = writer.Path;
            writer.WriteScalar("Train/Samples/train_loss", 128, 3.25f, now);
            writer.WriteScalar("Train/Samples/lr", 300_000_000_000L, 1e-4f, now.AddSeconds(1));
        }
        StringAssert.StartsWith(Path.GetFileName(path), $"events.out.tfevents.{now.ToUnixTimeSeconds()}.");
        CollectionAssert.AreEqual(new[] { ("Train/Samples/train_loss", 128L, 3.25f), ("Train/Samples/lr", 300_000_000_000L, 1e-4f) }, TensorBoardFiles.ReadScalars(path));

        using (var second = TensorBoardEventWriter.Create(directory, now))
            Assert.AreNotEqual(path, second.Path, "a second file in the same second does not overwrite the first");
        Directory.Delete(directory, recursive: true);
    }

    [TestMethod]
    public void TheSectionReadsDeepSpeedsKeys()
    {
        var absent = DeepSpeedConfig.Parse("""{ "train_batch_size": 8 }""").Config;
        Assert.AreEqual(MonitorConfig.Disabled("tensorboard"), absent.TensorBoard);
        Assert.AreEqual(MonitorConfig.Disabled("csv_monitor"), absent.CsvMonitor);
        Assert.AreEqual(Path.Combine("/out", "csv_monitor", "run1"), DeepSpeedConfig.Parse("""{ "train_batch_size": 8, "csv_monitor": { "enabled": true, "job_name": "run1" } }""").Config.CsvMonitor.Directory("/out"));
        Assert.AreEqual(Path.Combine("/out", "tensorboard", "DeepSpeedJobName"), DeepSpeedConfig.Parse("""{ "train_batch_size": 8, "tensorboard": { "enabled": true } }""").Config.TensorBoard.Directory("/out"));

        var fifteen = DeepSpeedConfig.Load(TestPaths.Config("15_ds_eigenvalue_quantize_tensorboard.json"));
        Assert.AreEqual(Path.Combine("/tmp/eigenvalue_quantize_output", "eigenvalue_quantize"), fifteen.Config.TensorBoard.Directory("/ignored"));
        Assert.IsFalse(fifteen.Warnings.Any(w => w.StartsWith("$.tensorboard", StringComparison.Ordinal)), string.Join("\n", fifteen.Warnings));
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""{ "train_batch_size": 8, "tensorboard": { "job_name": "a/b" } }""")).Message,
            "$.tensorboard.job_name: \"a/b\" is not a directory name");
    }
}
