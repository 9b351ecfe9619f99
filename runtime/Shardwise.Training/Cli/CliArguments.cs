using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Shardwise.Training.Cli;

/// <summary>Thrown for a bad command line; the message says what is wrong and what is accepted.</summary>
public sealed class CliException(string message) : Exception(message);

/// <summary>
/// <c>VERB [--option value | --flag]...</c>. Every option a verb reads must be declared, so a typo such as
/// <c>--step</c> is an error naming the valid options instead of being silently ignored.
/// </summary>
public sealed class CliArguments
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    private CliArguments(string verb) => Verb = verb;

    public string Verb { get; }

    public static CliArguments Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0].StartsWith("-", StringComparison.Ordinal))
            return ParseFrom("train", args, 0);
        return ParseFrom(args[0], args, 1);
    }

    private static CliArguments ParseFrom(string verb, IReadOnlyList<string> args, int start)
    {
        var parsed = new CliArguments(verb);
        for (int i = start; i < args.Count; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
                throw new CliException($"unexpected argument '{arg}': options look like --name value");
            string name = arg.Substring(2);
            string? value = null;
            int equals = name.IndexOf('=');
            if (equals >= 0)
            {
                value = name.Substring(equals + 1);
                name = name.Substring(0, equals);
            }
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                value = args[++i];
            }
            parsed._values[name] = value;
        }
        return parsed;
    }

    public string? String(string name)
    {
        _read.Add(name);
        if (!_values.TryGetValue(name, out var value)) return null;
        return value ?? throw new CliException($"--{name} needs a value");
    }

    public bool Flag(string name)
    {
        _read.Add(name);
        if (!_values.TryGetValue(name, out var value)) return false;
        return value is null || value is "true" or "1" or "yes"
            ? true
            : value is "false" or "0" or "no" ? false : throw new CliException($"--{name} is a flag; got '{value}'");
    }

    public long? Long(string name)
    {
        var text = String(name);
        if (text is null) return null;
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) && value >= 0
            ? value
            : throw new CliException($"--{name} needs a non-negative integer; got '{text}'");
    }

    public double? Double(string name)
    {
        var text = String(name);
        if (text is null) return null;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new CliException($"--{name} needs a number; got '{text}'");
    }

    /// <summary>Fails on any option given but never read by the verb.</summary>
    public void RejectUnknown()
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new CliException($"unknown option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => "--" + u))} for '{Verb}'; " +
                                   $"valid: {string.Join(", ", _read.OrderBy(r => r, StringComparer.Ordinal).Select(r => "--" + r))}");
        }
    }
}
