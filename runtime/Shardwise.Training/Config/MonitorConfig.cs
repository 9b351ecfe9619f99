namespace Shardwise.Training.Config;

/// <summary>
/// A DeepSpeed monitor section ("tensorboard", "csv_monitor": monitor/config.py): enabled, output_path, job_name. The
/// files go to <c>output_path/job_name/</c>; an empty output_path means the run's --output directory's
/// <c>tensorboard/</c> or <c>csv_monitor/</c>.
/// </summary>
public sealed record MonitorConfig
{
    public const string DefaultJobName = "DeepSpeedJobName";

    /// <summary>The section's JSON name, and the folder under --output when output_path is empty.</summary>
    public required string Section { get; init; }

    public required bool Enabled { get; init; }

    public required string OutputPath { get; init; }

    public required string JobName { get; init; }

    public static MonitorConfig Disabled(string section) => new() { Section = section, Enabled = false, OutputPath = "", JobName = DefaultJobName };

    /// <summary>Where the files go for a run writing into <paramref name="outputDirectory"/>.</summary>
    public string Directory(string outputDirectory) =>
        System.IO.Path.Combine(OutputPath.Length == 0 ? System.IO.Path.Combine(outputDirectory, Section) : OutputPath, JobName);

    internal static MonitorConfig Read(JsonSection parent, string name)
    {
        var section = parent.Section(name);
        var defaults = Disabled(name);
        var config = defaults with
        {
            Enabled = section.Bool("enabled") ?? defaults.Enabled,
            OutputPath = section.String("output_path") ?? defaults.OutputPath,
            JobName = section.String("job_name") ?? defaults.JobName,
        };
        if (config.JobName.Length == 0 || config.JobName.IndexOfAny(System.IO.Path.GetInvalidFileNameChars()) >= 0 || config.JobName is "." or "..")
            section.Error("job_name", $"\"{config.JobName}\" is not a directory name");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
