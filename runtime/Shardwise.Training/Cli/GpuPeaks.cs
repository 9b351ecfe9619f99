using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace Shardwise.Training.Cli;

/// <summary>A card's dense fp16/bf16 tensor-core peak, as bench/gpu-peaks.json names it.</summary>
public sealed record GpuPeak(string Card, double Tflops);

/// <summary>
/// The peak MFU divides by, looked up by CUDA device name in bench/gpu-peaks.json (embedded in this assembly; the
/// PyTorch reference script reads the same file): the first rule whose "contains" words all occur in the name and
/// whose "excludes" words do not, compared case-insensitively. Unknown cards give null: the caller says so and asks
/// for <c>--peak-tflops</c> instead of guessing.
/// </summary>
public static class GpuPeaks
{
    public const string ResourceName = "Shardwise.Training.gpu-peaks.json";

    private static readonly Lazy<IReadOnlyList<Rule>> Embedded = new(() =>
    {
        using var stream = typeof(GpuPeaks).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the embedded resource {ResourceName} is missing from Shardwise.Training");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd(), ResourceName);
    });

    /// <summary>The rules of the embedded table, in order.</summary>
    public static IReadOnlyList<Rule> Rules => Embedded.Value;

    /// <summary>The peak of the card named <paramref name="deviceName"/>; null when the table does not know it.</summary>
    public static GpuPeak? Find(string deviceName) => Find(deviceName, Rules);

    public static GpuPeak? Find(string deviceName, IReadOnlyList<Rule> rules)
    {
        ArgumentNullException.ThrowIfNull(deviceName);
        foreach (var rule in rules)
        {
            if (rule.Contains.All(word => deviceName.Contains(word, StringComparison.OrdinalIgnoreCase)) &&
                !rule.Excludes.Any(word => deviceName.Contains(word, StringComparison.OrdinalIgnoreCase)))
                return new GpuPeak(rule.Card, rule.Tflops);
        }
        return null;
    }

    /// <summary>Reads a table in gpu-peaks.json's format; errors name <paramref name="source"/> and the JSON path.</summary>
    public static IReadOnlyList<Rule> Parse(string json, string source)
    {
        using var document = JsonDocument.Parse(json);
        if (!document.RootElement.TryGetProperty("peaks", out var peaks) || peaks.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{source}: $.peaks must be an array");
        var rules = new List<Rule>();
        int index = 0;
        foreach (var entry in peaks.EnumerateArray())
        {
            string at = $"{source}: $.peaks[{index++}]";
            string card = entry.TryGetProperty("card", out var c) && c.ValueKind == JsonValueKind.String && c.GetString() is { Length: > 0 } name
                ? name : throw new InvalidDataException($"{at}.card must be a non-empty string");
            double tflops = entry.TryGetProperty("tflops", out var t) && t.ValueKind == JsonValueKind.Number && t.GetDouble() > 0
                ? t.GetDouble() : throw new InvalidDataException($"{at}.tflops must be a positive number");
            var contains = Words(entry, "contains", at);
            if (contains.Length == 0) throw new InvalidDataException($"{at}.contains must name at least one word");
            rules.Add(new Rule(card, contains, Words(entry, "excludes", at), tflops));
        }
        return rules;
    }

    private static string[] Words(JsonElement entry, string property, string at)
    {
        if (!entry.TryGetProperty(property, out var words)) return [];
        if (words.ValueKind != JsonValueKind.Array || words.EnumerateArray().Any(w => w.ValueKind != JsonValueKind.String))
            throw new InvalidDataException($"{at}.{property} must be an array of strings");
        return words.EnumerateArray().Select(w => w.GetString()!).ToArray();
    }

    /// <summary>One row of the table.</summary>
    public sealed record Rule(string Card, string[] Contains, string[] Excludes, double Tflops);
}
