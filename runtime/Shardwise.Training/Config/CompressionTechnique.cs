using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Shardwise.Training.Config;

/// <summary>
/// One technique of compression_training, opened: its section, its shared_parameters and whether it is on. Every
/// technique but layer_reduction has this shape (deepspeed/compression/config.py).
/// </summary>
/// <param name="Section">The technique's own section (holding shared_parameters and different_groups).</param>
/// <param name="Shared">Its shared_parameters.</param>
/// <param name="Enabled">shared_parameters.enabled (default false).</param>
/// <param name="Name">The technique's key, for messages ("weight_quantization").</param>
internal sealed record CompressionTechnique(JsonSection Section, JsonSection Shared, bool Enabled, string Name)
{
    public const string SharedParameters = "shared_parameters";
    public const string DifferentGroups = "different_groups";

    /// <summary>Opens <paramref name="key"/> of the compression_training section; an absent technique reads as off.</summary>
    public static CompressionTechnique Open(JsonSection compression, string key)
    {
        var section = compression.Section(key);
        var shared = section.Section(SharedParameters);
        return new CompressionTechnique(section, shared, shared.Bool("enabled") ?? false, key);
    }

    /// <summary>The JSON path of shared_parameters.enabled, where a refusal of the whole technique points.</summary>
    public string EnabledPath => Shared.PathOf("enabled");

    /// <summary>
    /// Reports a key that an enabled technique needs and that is missing. A switched-off technique is still read for
    /// type and range errors, but nothing is required of it: DeepSpeed never applies its values.
    /// </summary>
    public void Require(JsonSection section, string key)
    {
        if (Enabled && !section.Has(key)) section.Diagnostics.ErrorSentence(section.PathOf(key), $"is required when {Name} is enabled");
    }

    /// <summary>
    /// Reads different_groups: for each group its modules and related_modules, then its params through
    /// <paramref name="readParams"/>; unknown keys of the group and of its params are reported. An enabled technique
    /// needs at least one group (DeepSpeed asserts different_groups is given), unless <paramref name="requireGroups"/> is
    /// false: a technique refused as a whole gets that refusal alone.
    /// </summary>
    public List<T> ReadGroups<T>(Func<CompressionModuleGroup, JsonSection, T> readParams, bool requireGroups = true)
    {
        var result = new List<T>();
        bool given = Section.TryTake(DifferentGroups, out var raw);
        var groups = Section.Section(DifferentGroups);
        foreach (var (name, value) in groups.Leftovers().ToList())
        {
            if (value.ValueKind != JsonValueKind.Object)
            {
                groups.TryTake(name, out _);
                groups.Error(name, $"expected a group object with \"params\" and \"modules\", found {JsonSection.Describe(value)}");
                continue;
            }

            var group = groups.Section(name);
            var modules = CompressionModulePatterns.ReadModules(group);
            var related = CompressionModulePatterns.ReadRelatedModules(group, modules.Count);
            var parameters = group.Section("params");
            result.Add(readParams(new CompressionModuleGroup(name, group.Path, modules, related), parameters));
            UnsupportedFeaturePolicy.ReportLeftovers(parameters);
            UnsupportedFeaturePolicy.ReportLeftovers(group);
        }

        bool readable = !given || raw.ValueKind == JsonValueKind.Object;
        if (requireGroups && Enabled && readable && result.Count == 0)
        {
            string problem = given ? "has no group" : "is required";
            groups.Diagnostics.ErrorSentence(groups.Path, $"{problem} when {Name} is enabled: name at least one group, e.g. {{\"g1\": {{\"params\": {{...}}, \"modules\": [\"*\"]}}}} (DeepSpeed asserts this too)");
        }

        return result;
    }

    /// <summary>
    /// Reads shared_parameters.method, one of <paramref name="known"/> (DeepSpeed's list for the technique); an unknown
    /// name is an error with a did-you-mean hint. Returns <paramref name="fallback"/> when absent or unknown.
    /// </summary>
    public string ReadMethod(IReadOnlyList<string> known, string fallback) =>
        CompressionChoices.Read(Shared, "method", known, $"a {Name} method") ?? fallback;

    /// <summary>Reports the technique's leftover keys, at its own level and in shared_parameters.</summary>
    public void ReportLeftovers()
    {
        UnsupportedFeaturePolicy.ReportLeftovers(Shared);
        UnsupportedFeaturePolicy.ReportLeftovers(Section);
    }
}

/// <summary>
/// The "modules" and "related_modules" of a compression group. DeepSpeed searches each pattern as a regular expression in
/// the module names ("*" alone: every compressible module), so a pattern that does not compile is an error here, at
/// load time, instead of a failure when the trainer matches modules.
/// </summary>
internal static class CompressionModulePatterns
{
    public const string EveryModule = "*";

    /// <summary>"modules": a non-empty list of patterns; DeepSpeed's default ["*"] when absent.</summary>
    public static IReadOnlyList<string> ReadModules(JsonSection group)
    {
        const string key = "modules";
        if (!group.TryTake(key, out var value)) return [EveryModule];
        var patterns = ReadStrings(value, group.PathOf(key), group.Diagnostics, "module name patterns");
        if (patterns is null) return [EveryModule];
        if (value.GetArrayLength() == 0)
            group.Diagnostics.ErrorSentence(group.PathOf(key), "is empty: list the module name patterns the group covers, or leave it out for every module (\"*\")");
        if (patterns.Count == 0) return [EveryModule];

        for (int i = 0; i < patterns.Count; i++) CheckPattern(patterns[i], $"{group.PathOf(key)}[{i}]", group.Diagnostics);
        return patterns;
    }

    /// <summary>
    /// "related_modules": null, or one list of patterns per entry of modules (DeepSpeed pairs them by position: the
    /// modules whose inputs shrink with the pruned ones).
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<string>>? ReadRelatedModules(JsonSection group, int moduleCount)
    {
        const string key = "related_modules";
        if (!group.TryTake(key, out var value)) return null;
        string path = group.PathOf(key);
        if (value.ValueKind != JsonValueKind.Array)
        {
            group.Diagnostics.Error(path, $"expected a list with one list of module patterns per entry of modules, found {JsonSection.Describe(value)}");
            return null;
        }

        var lists = new List<IReadOnlyList<string>>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            string at = $"{path}[{index++}]";
            var patterns = ReadStrings(item, at, group.Diagnostics, "module name patterns");
            if (patterns is null) continue;
            for (int i = 0; i < patterns.Count; i++) CheckPattern(patterns[i], $"{at}[{i}]", group.Diagnostics);
            lists.Add(patterns);
        }

        if (index != moduleCount)
            group.Diagnostics.ErrorSentence(path, $"has {index} entries and modules has {moduleCount}: related_modules pairs one list with each entry of modules, by position");
        return lists;
    }

    private static void CheckPattern(string pattern, string path, ConfigDiagnostics diagnostics)
    {
        if (pattern == EveryModule) return;
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            diagnostics.Error(path, $"\"{pattern}\" is not a valid regular expression ({e.Message}); module patterns are searched as regular expressions in the module names, and \"*\" alone means every module");
        }
    }

    /// <summary>A list of strings; null (reported) when the value is not one.</summary>
    internal static List<string>? ReadStrings(JsonElement value, string path, ConfigDiagnostics diagnostics, string what)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            diagnostics.Error(path, $"expected a list of {what}, found {JsonSection.Describe(value)}");
            return null;
        }

        var strings = new List<string>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String) strings.Add(item.GetString()!);
            else diagnostics.Error($"{path}[{index}]", $"expected a string, found {JsonSection.Describe(item)}");
            index++;
        }

        return strings;
    }
}

/// <summary>The named choices of compression settings (quantization_type, rounding, method, ...).</summary>
internal static class CompressionChoices
{
    public static readonly string[] QuantizationTypes = ["symmetric", "asymmetric"];

    public static readonly string[] Roundings = ["nearest", "stochastic"];

    /// <summary>A string that must be one of <paramref name="known"/>; null when absent, or when not one of them (reported).</summary>
    public static string? Read(JsonSection section, string key, IReadOnlyList<string> known, string what)
    {
        string? value = section.String(key);
        if (value is null || known.Contains(value)) return value;
        string hint = DidYouMean.Suggest(value, known) is { } close ? $" (did you mean \"{close}\"?)" : "";
        section.Error(key, $"\"{value}\" is not {what}{hint}: use {Alternatives(known)}");
        return null;
    }

    public static QuantizationType ToQuantizationType(string? name) => name == "asymmetric" ? QuantizationType.Asymmetric : QuantizationType.Symmetric;

    public static QuantizationRounding ToRounding(string? name) => name == "stochastic" ? QuantizationRounding.Stochastic : QuantizationRounding.Nearest;

    /// <summary>"\"a\", \"b\" or \"c\"".</summary>
    public static string Alternatives(IReadOnlyList<string> known) =>
        known.Count == 1 ? $"\"{known[0]}\"" : string.Join(", ", known.Take(known.Count - 1).Select(k => $"\"{k}\"")) + $" or \"{known[^1]}\"";
}
