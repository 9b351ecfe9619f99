namespace Shardwise.Training.Config;

/// <summary>
/// The "tensorboard" section (DeepSpeed's monitor/config.py): rank 0 writes the reported metrics as TensorBoard scalars
/// into <c>output_path/job_name/</c> (<c>Progress/TensorBoardMonitor</c>). An empty output_path means the run's
/// --output directory's <c>tensorboard/</c>.
/// </summary>
public sealed record TensorBoardConfig
{
    public const string DefaultJobName = "DeepSpeedJobName";

    public required bool Enabled { get; init; }

    public required string OutputPath { get; init; }

    public required string JobName { get; init; }

    public static TensorBoardConfig Disabled { get; } = new() { Enabled = false, OutputPath = "", JobName = DefaultJobName };

    /// <summary>Where the event files go for a run writing into <paramref name="outputDirectory"/>.</summary>
    public string Directory(string outputDirectory) =>
        System.IO.Path.Combine(OutputPath.Length == 0 ? System.IO.Path.Combine(outputDirectory, "tensorboard") : OutputPath, JobName);

    internal static TensorBoardConfig Read(JsonSection parent)
    {
        var section = parent.Section("tensorboard");
        var config = new TensorBoardConfig
        {
            Enabled = section.Bool("enabled") ?? Disabled.Enabled,
            OutputPath = section.String("output_path") ?? Disabled.OutputPath,
            JobName = section.String("job_name") ?? Disabled.JobName,
        };
        if (config.JobName.Length == 0 || config.JobName.IndexOfAny(System.IO.Path.GetInvalidFileNameChars()) >= 0 || config.JobName is "." or "..")
            section.Error("job_name", $"\"{config.JobName}\" is not a directory name");
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return config;
    }
}
