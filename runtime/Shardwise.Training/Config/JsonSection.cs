using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// One JSON object of the config, read key by key. It remembers which keys were read so that whatever is
/// left afterwards can be reported (unknown key, or known-but-unsupported DeepSpeed feature), and it turns
/// every type problem into an error that names the JSON path instead of throwing.
/// JSON null counts as "not given", as DeepSpeed treats None as "use the default".
/// </summary>
internal sealed class JsonSection
{
    private readonly Dictionary<string, JsonElement> members = new(StringComparer.Ordinal);
    private readonly List<string> order = [];
    private readonly HashSet<string> consumed = new(StringComparer.Ordinal);

    public JsonSection(JsonElement obj, string path, ConfigDiagnostics diagnostics)
    {
        Path = path;
        Diagnostics = diagnostics;
        if (obj.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        foreach (var property in obj.EnumerateObject())
        {
            if (members.ContainsKey(property.Name))
            {
                // Python's json.load silently keeps the last one; a config that says two things is ambiguous.
                diagnostics.Error(PathOf(property.Name), "duplicate key (Python would silently keep the last one); remove one");
            }
            else
            {
                order.Add(property.Name);
            }

            members[property.Name] = property.Value;
        }
    }

    public string Path { get; }

    public ConfigDiagnostics Diagnostics { get; }

    public static JsonSection Empty(string path, ConfigDiagnostics diagnostics) => new(default, path, diagnostics);

    public string PathOf(string key) => Path + "." + key;

    /// <summary>Every key a parser asked for, present or not: the keys this level understands.</summary>
    public IReadOnlyCollection<string> ReadKeys => consumed;

    public bool Has(string key) => members.TryGetValue(key, out var v) && v.ValueKind != JsonValueKind.Null;

    public bool IsAuto(string key) =>
        members.TryGetValue(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() == "auto";

    /// <summary>Marks the key as handled and returns its value; false when absent or null.</summary>
    public bool TryTake(string key, out JsonElement value)
    {
        consumed.Add(key);
        if (members.TryGetValue(key, out value) && value.ValueKind != JsonValueKind.Null)
        {
            return true;
        }

        value = default;
        return false;
    }

    /// <summary>Keys nobody read, in file order.</summary>
    public IEnumerable<(string Key, JsonElement Value)> Leftovers()
    {
        foreach (var key in order)
        {
            if (!consumed.Contains(key))
            {
                yield return (key, members[key]);
            }
        }
    }

    /// <summary>
    /// Marks every key not read yet as handled, unreported: for a section that is switched off, whose other keys
    /// DeepSpeed does not read either.
    /// </summary>
    public void SkipRest()
    {
        foreach (var (key, _) in Leftovers().ToList()) consumed.Add(key);
    }

    public void Error(string key, string message) => Diagnostics.Error(PathOf(key), message);

    public void Warning(string key, string message) => Diagnostics.Warning(PathOf(key), message);

    /// <summary>A floating-point value; "auto" is handled by <paramref name="auto"/>.</summary>
    public double? Number(string key, AutoRule auto)
    {
        if (!TryTake(key, out var value))
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number)
        {
            return value.GetDouble();
        }

        if (value.ValueKind == JsonValueKind.String && value.GetString() == "auto")
        {
            return ResolveAuto(key, auto);
        }

        Error(key, $"expected a number, found {Describe(value)}");
        return null;
    }

    /// <summary>An integer. Integral floats such as 5e8 are accepted, because real configs write sizes that way.</summary>
    public long? Integer(string key, AutoRule auto, long min = long.MinValue, long max = long.MaxValue)
    {
        var number = Number(key, auto);
        if (number is not { } n)
        {
            return null;
        }

        if (double.IsNaN(n) || Math.Floor(n) != n || n < -9.0e18 || n > 9.0e18)
        {
            Error(key, $"expected an integer, found {Format(n)}");
            return null;
        }

        var integer = (long)n;
        if (integer < min || integer > max)
        {
            Error(key, $"{integer} is out of range: must be {Range(min, max)}");
            return null;
        }

        return integer;
    }

    public int? Int32(string key, AutoRule auto, int min = int.MinValue, int max = int.MaxValue) =>
        (int?)Integer(key, auto, min, max);

    /// <summary>
    /// An integer, or with <paramref name="listAllowed"/> a non-empty list of them (autotuning's search space: DeepSpeed
    /// reads a list there as the candidates to try). A list returns its first entry and sets <paramref name="candidates"/>;
    /// without <paramref name="listAllowed"/> a list is an error that says how to use it.
    /// </summary>
    public int? Int32OrCandidates(string key, AutoRule auto, bool listAllowed, out IReadOnlyList<int>? candidates, int min = int.MinValue, int max = int.MaxValue)
    {
        candidates = null;
        if (!members.TryGetValue(key, out var value) || value.ValueKind != JsonValueKind.Array) return Int32(key, auto, min, max);
        consumed.Add(key);
        if (!listAllowed)
        {
            Diagnostics.ErrorSentence(PathOf(key), $"is a list {Abbreviate(value.GetRawText())}: a list is autotuning's search space, so set \"autotuning\": {{\"enabled\": true}} and run tune, or set one number");
            return null;
        }

        var list = new List<int>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            string at = $"{PathOf(key)}[{index++}]";
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int n)) Diagnostics.Error(at, $"expected an integer, found {Describe(item)}");
            else if (n < min || n > max) Diagnostics.Error(at, $"{n} is out of range: must be {Range(min, max)}");
            else list.Add(n);
        }

        if (index == 0) Diagnostics.ErrorSentence(PathOf(key), "is an empty list: list the candidates to try, or set one number");
        if (list.Count == 0) return null;
        candidates = list;
        return list[0];
    }

    /// <summary>The allowed range in words; Int32 passes int.MaxValue as "no upper bound", so that is only a lower one.</summary>
    private static string Range(long min, long max) => max is long.MaxValue or int.MaxValue ? $">= {min}" : $"between {min} and {max}";

    public bool? Bool(string key)
    {
        if (!TryTake(key, out var value))
        {
            return null;
        }

        if (value.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return value.GetBoolean();
        }

        Error(key, $"expected true or false, found {Describe(value)}");
        return null;
    }

    /// <summary>A boolean that Hugging Face configs may set to "auto" (fp16/bf16 enabled).</summary>
    public bool? BoolOrAuto(string key, bool? callerValue, string hint)
    {
        if (IsAuto(key))
        {
            consumed.Add(key);
            if (callerValue is null)
            {
                Diagnostics.ErrorSentence(PathOf(key), $"is \"auto\": {hint} or set true/false");
            }

            return callerValue;
        }

        return Bool(key);
    }

    public string? String(string key)
    {
        if (!TryTake(key, out var value))
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return value.GetString();
        }

        Error(key, $"expected a string, found {Describe(value)}");
        return null;
    }

    /// <summary>A nested object; an empty section when absent, so defaults come from one code path.</summary>
    public JsonSection Section(string key)
    {
        if (!TryTake(key, out var value))
        {
            return Empty(PathOf(key), Diagnostics);
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            Error(key, $"expected an object, found {Describe(value)}");
            return Empty(PathOf(key), Diagnostics);
        }

        return new JsonSection(value, PathOf(key), Diagnostics);
    }

    public static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{value.GetString()}\"",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Array => $"an array {Abbreviate(value.GetRawText())}",
        JsonValueKind.Object => "an object",
        _ => "null",
    };

    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private double? ResolveAuto(string key, AutoRule auto)
    {
        switch (auto.Kind)
        {
            case AutoKind.TreatAsAbsent:
                return null;
            case AutoKind.FromCaller:
                if (auto.Value is null)
                {
                    Diagnostics.ErrorSentence(PathOf(key), $"is \"auto\": {auto.Hint} or set a number");
                }

                return auto.Value;
            case AutoKind.FromCallerOrFallback:
                if (auto.Value is { } given)
                {
                    return given;
                }

                Warning(key, $"\"auto\" and no value was given ({auto.Hint}); using DeepSpeed's default {Format(auto.Fallback!.Value)}");
                return auto.Fallback;
            default:
                Error(key, "\"auto\" is not accepted here; set a number");
                return null;
        }
    }

    private static string Abbreviate(string raw)
    {
        var flat = raw.Replace("\r", string.Empty, StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
        return flat.Length <= 40 ? flat : flat[..37] + "...";
    }
}
