using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Shardwise.Training.Progress;

/// <summary>
/// The loss columns of a metrics.csv (<see cref="MetricsCsvWriter"/>): per reported step, the training loss (averaged
/// over the steps since the previous row) and the validation loss where one was measured. A step reported twice (a
/// run resumed from an earlier checkpoint appends again) keeps its last row, the one the finished run stands on.
/// </summary>
public sealed class LossCurve
{
    private LossCurve(string path, IReadOnlyList<Point> points)
    {
        Path = path;
        Points = points;
    }

    /// <summary>One row: step, training loss, validation loss (null when not measured at that step).</summary>
    public readonly record struct Point(long Step, double Loss, double? ValidationLoss);

    public string Path { get; }

    /// <summary>The rows by increasing step, one per step.</summary>
    public IReadOnlyList<Point> Points { get; }

    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">
    /// No header with step, loss and val_loss columns, no rows, or a cell that is not a number (the message names the
    /// file, line and column).
    /// </exception>
    public static LossCurve Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such metrics file (a training run writes OUTPUT/metrics.csv)", path);
        using var reader = new StreamReader(path);
        string header = reader.ReadLine() ?? throw new InvalidDataException($"{path}: empty file; expected a metrics.csv header");
        string[] columns = header.Split(',');
        int step = Column(columns, "step", path), loss = Column(columns, "loss", path), validation = Column(columns, "val_loss", path);

        var byStep = new SortedDictionary<long, Point>();
        int lineNumber = 1;
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            lineNumber++;
            if (line.Length == 0) continue;
            string[] cells = line.Split(',');
            // A row torn by a crash (fewer cells than the header) carries no trustworthy numbers.
            if (cells.Length < columns.Length)
                throw new InvalidDataException($"{path}:{lineNumber}: {cells.Length} cells, the header has {columns.Length}");
            long stepValue = long.TryParse(cells[step], NumberStyles.Integer, CultureInfo.InvariantCulture, out long s)
                ? s
                : throw new InvalidDataException($"{path}:{lineNumber}: step '{cells[step]}' is not an integer");
            byStep[stepValue] = new Point(stepValue, Number(cells[loss], "loss", path, lineNumber),
                cells[validation].Length == 0 ? null : Number(cells[validation], "val_loss", path, lineNumber));
        }
        if (byStep.Count == 0) throw new InvalidDataException($"{path}: a header but no rows");
        return new LossCurve(path, byStep.Values.ToArray());
    }

    private static int Column(string[] columns, string name, string path)
    {
        int index = Array.IndexOf(columns, name);
        return index >= 0 ? index : throw new InvalidDataException($"{path}: no '{name}' column in the header; expected a metrics.csv written by the trainer");
    }

    private static double Number(string cell, string column, string path, int line)
        => double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new InvalidDataException($"{path}:{line}: {column} '{cell}' is not a number");
}
