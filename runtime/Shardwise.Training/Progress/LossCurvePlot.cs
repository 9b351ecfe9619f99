using System;
using System.Collections.Generic;
using System.IO;
using ScottPlot;
using SkiaSharp;

namespace Shardwise.Training.Progress;

/// <summary>
/// Renders training and validation loss against step to an 800×500 PNG. Text needs a TrueType font under
/// /usr/share/fonts on Linux (Skia is linked without fontconfig, so nothing else is required); without one the
/// curves still render, unlabelled.
/// </summary>
public static class LossCurvePlot
{
    public const int WidthPixels = 800;
    public const int HeightPixels = 500;

    // Skia is linked without fontconfig, so ScottPlot's generic "sans" resolves to whatever font comes first
    // (often a serif). Ask for common sans families by name instead, falling back to ScottPlot's default.
    private static readonly Lazy<string> LabelFont = new(() =>
    {
        foreach (string family in (string[])["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"])
        {
            using SKTypeface? typeface = SKFontManager.Default.MatchFamily(family);
            if (typeface is not null && typeface.FamilyName == family)
                return family;
        }
        return Fonts.Default;
    });

    /// <summary>
    /// Writes the plot to <paramref name="pngPath"/>, replacing any previous file atomically: the image goes to a
    /// temporary file beside it and is renamed over the target, so a viewer or a crash never sees a half-written PNG.
    /// Non-finite losses (overflowed steps) are left out rather than wrecking the axis range.
    /// </summary>
    public static void Write(
        string pngPath,
        IReadOnlyList<(long Step, double Loss)> train,
        IReadOnlyList<(long Step, double Loss)> validation,
        string title)
    {
        ArgumentException.ThrowIfNullOrEmpty(pngPath);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(validation);
        ArgumentNullException.ThrowIfNull(title);

        byte[] png = Render(train, validation, title);

        string fullPath = Path.GetFullPath(pngPath);
        string directory = Path.GetDirectoryName(fullPath)!;
        Directory.CreateDirectory(directory);
        // Same directory as the target, so the rename stays on one file system and is atomic.
        string temp = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(png);
                stream.Flush(flushToDisk: true); // Data on disk before the rename makes it visible.
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static byte[] Render(
        IReadOnlyList<(long Step, double Loss)> train,
        IReadOnlyList<(long Step, double Loss)> validation,
        string title)
    {
        var plot = new Plot();
        plot.Font.Set(LabelFont.Value);
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel("loss (nats/token)");

        (double[] trainSteps, double[] trainLoss) = Finite(train);
        if (trainSteps.Length > 0)
        {
            var line = plot.Add.ScatterLine(trainSteps, trainLoss);
            line.LegendText = "train";
            line.LineWidth = 1.5f;
        }

        (double[] valSteps, double[] valLoss) = Finite(validation);
        if (valSteps.Length > 0)
        {
            // Validation is sparse (every few hundred steps): markers show where it was actually measured.
            var points = plot.Add.Scatter(valSteps, valLoss);
            points.LegendText = "validation";
            points.LineWidth = 2;
            points.MarkerSize = 6;
        }

        // Loss falls from the upper left, so the upper right corner is normally free for the legend.
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(WidthPixels, HeightPixels, ImageFormat.Png);
    }

    private static (double[] Steps, double[] Losses) Finite(IReadOnlyList<(long Step, double Loss)> points)
    {
        var steps = new List<double>(points.Count);
        var losses = new List<double>(points.Count);
        foreach ((long step, double loss) in points)
        {
            if (!double.IsFinite(loss))
                continue;
            steps.Add(step);
            losses.Add(loss);
        }
        return (steps.ToArray(), losses.ToArray());
    }
}
