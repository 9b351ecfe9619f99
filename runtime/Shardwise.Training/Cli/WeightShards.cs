using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>One file of a sharded weights export and the parameters it holds, in layout order.</summary>
public sealed record WeightShard(string FileName, IReadOnlyList<ParameterSlot> Parameters, long Bytes);

/// <summary>
/// How consolidated weights are cut into files of at most a given size, the way Hugging Face's
/// <c>save_pretrained(max_shard_size=...)</c> and DeepSpeed's <c>zero_to_fp32 --max_shard_size</c> cut them:
/// parameters in layout order, a new file when the next one would not fit (a parameter larger than the limit gets a
/// file of its own), named <c>STEM-00001-of-0000N.safetensors</c> beside an index, <c>STEM.safetensors.index.json</c>,
/// that maps every parameter to its file. One file needs no index and keeps the output's name.
/// </summary>
public static partial class WeightShards
{
    /// <summary>The files for <paramref name="layout"/> at <paramref name="bytesPerElement"/>, each at most <paramref name="maxBytes"/> where one parameter allows.</summary>
    public static IReadOnlyList<WeightShard> Plan(ParameterLayout layout, int bytesPerElement, long maxBytes, string outputFileName)
    {
        if (maxBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxBytes), maxBytes, "a shard holds at least one byte");
        var groups = new List<List<ParameterSlot>>();
        long current = 0;
        foreach (var slot in layout.Slots)
        {
            long bytes = slot.Length * bytesPerElement;
            if (groups.Count == 0 || (current > 0 && current + bytes > maxBytes))
            {
                groups.Add([]);
                current = 0;
            }
            groups[^1].Add(slot);
            current += bytes;
        }
        if (groups.Count <= 1)
            return [new WeightShard(outputFileName, layout.Slots.ToArray(), layout.ParameterCount * bytesPerElement)];
        string stem = Stem(outputFileName);
        return groups.Select((slots, i) => new WeightShard(
                string.Format(CultureInfo.InvariantCulture, "{0}-{1:00000}-of-{2:00000}.safetensors", stem, i + 1, groups.Count),
                slots, slots.Sum(s => s.Length) * bytesPerElement))
            .ToArray();
    }

    /// <summary>The index file's name for <paramref name="outputFileName"/>: <c>model.safetensors</c> → <c>model.safetensors.index.json</c>.</summary>
    public static string IndexFileName(string outputFileName) => Stem(outputFileName) + ".safetensors.index.json";

    /// <summary>
    /// A size as Hugging Face writes it: a number of bytes, or a number with KB/MB/GB (powers of 1000) or KiB/MiB/GiB
    /// (powers of 1024), as in <c>5GB</c> or <c>500MiB</c>.
    /// </summary>
    public static long ParseSize(string text, string option)
    {
        var match = SizePattern().Match(text.Trim());
        if (!match.Success || !double.TryParse(match.Groups["number"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) || number <= 0)
            throw new CliException($"--{option} '{text}' is not a size: write bytes, or a number with KB, MB, GB, KiB, MiB or GiB (as in 5GB)");
        double unit = match.Groups["unit"].Value.ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "KIB" => 1L << 10,
            "MIB" => 1L << 20,
            _ => 1L << 30,
        };
        return checked((long)Math.Round(number * unit));
    }

    private static string Stem(string outputFileName)
    {
        string name = Path.GetFileName(outputFileName);
        return name.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? name[..^".safetensors".Length] : name;
    }

    [GeneratedRegex(@"^(?<number>[0-9]+(\.[0-9]+)?)\s*(?<unit>|B|KB|MB|GB|KiB|MiB|GiB)$", RegexOptions.IgnoreCase)]
    private static partial Regex SizePattern();
}
