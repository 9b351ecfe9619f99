using System.Collections.Generic;

namespace Shardwise.Training.Config;

/// <summary>
/// Collects every error and warning of one load, so the user fixes the whole file in one round trip
/// instead of one error per run.
/// </summary>
internal sealed class ConfigDiagnostics
{
    private readonly List<string> errors = [];
    private readonly List<string> warnings = [];

    public IReadOnlyList<string> Errors => errors;

    public IReadOnlyList<string> Warnings => warnings;

    public void Error(string path, string message) => errors.Add($"{path}: {message}");

    /// <summary>For messages that read as a sentence about the path ("$.x is \"auto\": ...").</summary>
    public void ErrorSentence(string path, string predicate) => errors.Add($"{path} {predicate}");

    public void Warning(string path, string message) => warnings.Add($"{path}: {message}");
}
