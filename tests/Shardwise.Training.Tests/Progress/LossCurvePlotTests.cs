using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Progress;
using SkiaSharp;

namespace Shardwise.Training.Tests.Progress;

[TestClass]
public sealed class LossCurvePlotTests
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    // A realistic run: exponential decay towards 1.8 nats with deterministic noise, validation every 250 steps.
    private static List<(long Step, double Loss)> TrainCurve()
    {
        var random = new Random(42);
        return Enumerable.Range(1, 2000)
            .Select(i => ((long)i, 1.8 + 8.0 * Math.Exp(-i / 300.0) + 0.15 * (random.NextDouble() - 0.5)))
            .ToList();
    }

    private static List<(long Step, double Loss)> ValidationCurve() =>
        Enumerable.Range(1, 8).Select(k => ((long)(k * 250), 1.9 + 8.0 * Math.Exp(-k * 250 / 300.0))).ToList();

    [TestMethod]
    public void Write_ProducesAn800x500PngOfBothCurves()
    {
        using var dir = new TempDirectory();
        string path = dir.File("loss.png");

        LossCurvePlot.Write(path, TrainCurve(), ValidationCurve(), "tiny-gpt: loss");

        byte[] png = File.ReadAllBytes(path);
        CollectionAssert.AreEqual(PngSignature, png[..8]);
        // The first chunk is IHDR: 4-byte length, "IHDR", then big-endian width and height.
        Assert.AreEqual("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.AreEqual(800, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16, 4)));
        Assert.AreEqual(500, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20, 4)));

        // Axes, grid, text and legend frame are grey; only the curves are coloured. Count coloured pixels to know
        // both series were really drawn, not just an empty frame.
        using SKBitmap bitmap = SKBitmap.Decode(png);
        int coloured = 0;
        var hues = new HashSet<int>();
        for (int y = 0; y < bitmap.Height; y++)
        {
            for (int x = 0; x < bitmap.Width; x++)
            {
                SKColor c = bitmap.GetPixel(x, y);
                if (Math.Max(c.Red, Math.Max(c.Green, c.Blue)) - Math.Min(c.Red, Math.Min(c.Green, c.Blue)) < 60)
                    continue;
                coloured++;
                c.ToHsv(out float hue, out _, out _);
                hues.Add((int)(hue / 30)); // 12 coarse hue buckets
            }
        }
        Assert.IsGreaterThan(1000, coloured, "the curves cover a visible area");
        Assert.IsGreaterThanOrEqualTo(2, hues.Count, "train and validation are drawn in different colours");

        Assert.HasCount(1, Directory.GetFiles(dir.FullPath), "no temporary file is left behind");
    }

    [TestMethod]
    public void Write_ReplacesAnExistingPlotAndSkipsNonFiniteLosses()
    {
        using var dir = new TempDirectory();
        string path = dir.File(Path.Combine("plots", "loss.png"));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "stale");

        var train = TrainCurve();
        train[500] = (train[500].Step, double.PositiveInfinity); // an overflowed step
        train[501] = (train[501].Step, double.NaN);
        LossCurvePlot.Write(path, train, [], "no validation yet");

        byte[] png = File.ReadAllBytes(path);
        CollectionAssert.AreEqual(PngSignature, png[..8]);
        Assert.HasCount(1, Directory.GetFiles(Path.GetDirectoryName(path)!));
    }
}
