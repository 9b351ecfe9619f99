using System;
using System.Collections.Generic;
using System.Linq;

namespace Shardwise.Training.Config;

/// <summary>
/// A ds_config.json that Shardwise refuses to run. Every error names the file and either a JSON path
/// ("$.zero_optimization.stage") or, for malformed JSON, a 1-based line:column, because a config error
/// is only actionable when the user can find the spot in the file.
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string sourceName, IReadOnlyList<string> errors)
        : base(FormatMessage(sourceName, errors))
    {
        SourceName = sourceName;
        Errors = errors;
    }

    public ConfigException(string sourceName, int line, int column, string detail, Exception? inner = null)
        : base($"{sourceName}:{line}:{column}: malformed JSON at line {line}, column {column}: {detail}", inner)
    {
        SourceName = sourceName;
        Line = line;
        Column = column;
        Errors = [$"line {line}, column {column}: {detail}"];
    }

    /// <summary>The file name (or "&lt;string&gt;" for in-memory JSON).</summary>
    public string SourceName { get; }

    /// <summary>Each error on its own, path first (all of them are collected before throwing).</summary>
    public IReadOnlyList<string> Errors { get; }

    /// <summary>1-based line of a JSON syntax error; null for validation errors.</summary>
    public int? Line { get; }

    /// <summary>1-based column (in characters) of a JSON syntax error; null for validation errors.</summary>
    public int? Column { get; }

    private static string FormatMessage(string sourceName, IReadOnlyList<string> errors)
    {
        if (errors.Count == 1)
        {
            return $"{sourceName}: {errors[0]}";
        }

        return $"{sourceName}: {errors.Count} configuration errors:" + string.Concat(errors.Select(e => Environment.NewLine + "  - " + e));
    }
}
