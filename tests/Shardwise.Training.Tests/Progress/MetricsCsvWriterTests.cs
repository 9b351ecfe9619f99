using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Progress;

namespace Shardwise.Training.Tests.Progress;

[TestClass]
public sealed class MetricsCsvWriterTests
{
    [TestMethod]
    public void ResumingAppendsBelowASingleHeader()
    {
        using var dir = new TempDirectory();
        string path = dir.File("metrics.csv");

        using (var writer = new MetricsCsvWriter(path))
            writer.Append(ProgressSamples.Step120);
        // A resumed run opens the same file again.
        using (var writer = new MetricsCsvWriter(path))
        {
            writer.Append(ProgressSamples.Step120 with
            {
                Step = 121,
                ValidationLoss = null,
                Accuracy = 0.875,
                WallClock = new WallClockBreakdown(60.1, 110, 12.25),
            });
        }

        string[] lines = File.ReadAllLines(path);
        Assert.HasCount(3, lines);
        Assert.AreEqual(MetricsCsvWriter.Header, lines[0]);
        Assert.AreEqual(
            "120,2000,2.43124,2.51,,0.000987,65536,0,4210.4,182.3,0.84213,3355443,3355443,0,6710886,12687770,9216,,,",
            lines[1]);
        Assert.AreEqual(
            "121,2000,2.43124,,0.875,0.000987,65536,0,4210.4,182.3,0.84213,3355443,3355443,0,6710886,12687770,9216,60.1,110,12.25",
            lines[2]);
        Assert.AreEqual(MetricsCsvWriter.Header.Split(',').Length, lines[1].Split(',').Length);
    }

    [TestMethod]
    public void EachRowIsOnDiskBeforeTheWriterCloses()
    {
        using var dir = new TempDirectory();
        string path = dir.File("metrics.csv");
        using var writer = new MetricsCsvWriter(path);
        writer.Append(ProgressSamples.Step120);

        // Read while the writer is still open, as after a crash.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        string[] lines = new StreamReader(stream).ReadToEnd().Split('\n');
        Assert.AreEqual(MetricsCsvWriter.Header, lines[0]);
        StringAssert.StartsWith(lines[1], "120,2000,");
    }

    [TestMethod]
    public void ATornLastRowIsNotJoinedWithTheNextOne()
    {
        using var dir = new TempDirectory();
        string path = dir.File("metrics.csv");
        File.WriteAllText(path, MetricsCsvWriter.Header + "\n119,2000,2.4");

        using (var writer = new MetricsCsvWriter(path))
            writer.Append(ProgressSamples.Step120);

        string[] lines = File.ReadAllLines(path);
        Assert.HasCount(3, lines);
        Assert.AreEqual("119,2000,2.4", lines[1]);
        StringAssert.StartsWith(lines[2], "120,2000,");
    }

    [TestMethod]
    public void AFileWithAnotherHeaderIsRefused()
    {
        using var dir = new TempDirectory();
        string path = dir.File("metrics.csv");
        File.WriteAllText(path, "step,loss\n1,2.5\n");

        Assert.ThrowsExactly<InvalidDataException>(() => new MetricsCsvWriter(path));
        Assert.AreEqual("step,loss\n1,2.5\n", File.ReadAllText(path), "the file is left untouched");
    }
}
