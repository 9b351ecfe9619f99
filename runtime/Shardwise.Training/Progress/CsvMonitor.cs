using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace Shardwise.Training.Progress;

/// <summary>
/// DeepSpeed's csv_monitor for the trainer (rank 0): one CSV file per tag in <c>output_path/job_name/</c>, named after
/// the tag with '/' and ' ' made '_' (<c>Train_Samples_train_loss.csv</c>), a header <c>step,NAME</c> (the tag's last
/// part) and one row per reported step, x = samples seen. Rows are appended and flushed, so a resumed run continues
/// the files and a killed one keeps what it wrote.
/// </summary>
public sealed class CsvMonitor
{
    private readonly string _directory;
    private readonly HashSet<string> _started = new(StringComparer.Ordinal);

    public CsvMonitor(string directory)
    {
        Directory.CreateDirectory(directory);
        _directory = directory;
    }

    public string DirectoryPath => _directory;

    /// <summary>The file a tag's values go to.</summary>
    public string FileFor(string tag) => Path.Combine(_directory, tag.Replace('/', '_').Replace(' ', '_') + ".csv");

    public void Append(StepMetrics metrics, long samplesPerStep)
    {
        foreach (var (tag, value) in MonitorScalars.Of(metrics))
        {
            string path = FileFor(tag);
            var row = new StringBuilder();
            // A file a resumed run already started keeps its one header.
            if (_started.Add(tag) && (!File.Exists(path) || new FileInfo(path).Length == 0))
                row.Append("step,").Append(tag[(tag.LastIndexOf('/') + 1)..]).Append('\n');
            row.Append((metrics.Step * samplesPerStep).ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            File.AppendAllText(path, row.ToString());
        }
    }
}
