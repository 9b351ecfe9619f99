using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using Shardwise.Sparsity;

namespace Shardwise.Training.Config;

/// <summary>
/// The "sparse_attention" section (deepspeed/runtime/config.py, get_sparse_attention): DeepSpeed's keys and defaults
/// per mode, read into a <see cref="SparseAttentionPattern"/>; its checks are the pattern's own
/// (<see cref="SparseAttentionPattern.Problems"/>), reported at their JSON paths. A key that the chosen mode does not
/// use is a warning (DeepSpeed ignores it silently). Null when the section is absent.
/// </summary>
public static class SparseAttentionConfig
{
    // "seed" is Shardwise's: the random blocks of variable and bigbird (DeepSpeed draws them unseeded).
    private static readonly string[] Common = ["mode", "block", "different_layout_per_head", "attention", "seed"];

    private static readonly Dictionary<SparseAttentionMode, string[]> KeysOfMode = new()
    {
        [SparseAttentionMode.Dense] = [],
        [SparseAttentionMode.Fixed] = ["num_local_blocks", "num_global_blocks", "horizontal_global_attention", "num_different_global_patterns"],
        [SparseAttentionMode.Variable] = ["num_random_blocks", "local_window_blocks", "global_block_indices", "global_block_end_indices", "horizontal_global_attention"],
        [SparseAttentionMode.BigBird] = ["num_random_blocks", "num_sliding_window_blocks", "num_global_blocks"],
        [SparseAttentionMode.BSLongformer] = ["num_sliding_window_blocks", "global_block_indices", "global_block_end_indices"],
    };

    internal static SparseAttentionPattern? Read(JsonSection root)
    {
        if (!root.Has("sparse_attention"))
        {
            root.TryTake("sparse_attention", out _);
            return null;
        }

        var section = root.Section("sparse_attention");
        var defaults = new SparseAttentionPattern();
        var mode = ReadMode(section);
        var pattern = new SparseAttentionPattern
        {
            Mode = mode,
            Block = section.Int32("block", AutoRule.NotAllowed) ?? defaults.Block,
            DifferentLayoutPerHead = section.Bool("different_layout_per_head") ?? defaults.DifferentLayoutPerHead,
            Attention = ReadDirection(section),
            NumLocalBlocks = section.Int32("num_local_blocks", AutoRule.NotAllowed) ?? defaults.NumLocalBlocks,
            NumGlobalBlocks = section.Int32("num_global_blocks", AutoRule.NotAllowed) ?? defaults.NumGlobalBlocks,
            HorizontalGlobalAttention = section.Bool("horizontal_global_attention") ?? defaults.HorizontalGlobalAttention,
            NumDifferentGlobalPatterns = section.Int32("num_different_global_patterns", AutoRule.NotAllowed) ?? defaults.NumDifferentGlobalPatterns,
            NumRandomBlocks = section.Int32("num_random_blocks", AutoRule.NotAllowed) ?? defaults.NumRandomBlocks,
            LocalWindowBlocks = IntList(section, "local_window_blocks") ?? defaults.LocalWindowBlocks,
            GlobalBlockIndices = IntList(section, "global_block_indices") ?? defaults.GlobalBlockIndices,
            GlobalBlockEndIndices = IntList(section, "global_block_end_indices"),
            NumSlidingWindowBlocks = section.Int32("num_sliding_window_blocks", AutoRule.NotAllowed) ?? defaults.NumSlidingWindowBlocks,
            Seed = section.Int32("seed", AutoRule.NotAllowed) ?? defaults.Seed,
        };

        var used = new HashSet<string>(Common.Concat(KeysOfMode[mode]), StringComparer.Ordinal);
        foreach (string key in KeysOfMode.Values.SelectMany(keys => keys).Distinct())
            if (!used.Contains(key) && section.Has(key))
                section.Warning(key, $"has no effect in mode \"{ModeName(mode)}\"; ignored (it belongs to {string.Join(", ", KeysOfMode.Where(m => m.Value.Contains(key)).Select(m => ModeName(m.Key)))})");

        foreach (var (key, message) in pattern.Problems())
            section.Error(key, message);
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        return pattern;
    }

    /// <summary>
    /// The pattern as a sparse_attention section with the keys its mode uses (for checkpoints: <see cref="Read"/> reads
    /// it back to an equal pattern).
    /// </summary>
    public static void Write(Utf8JsonWriter json, SparseAttentionPattern pattern)
    {
        json.WriteStartObject();
        json.WriteString("mode", ModeName(pattern.Mode));
        json.WriteNumber("block", pattern.Block);
        json.WriteBoolean("different_layout_per_head", pattern.DifferentLayoutPerHead);
        json.WriteString("attention", pattern.Attention == SparseAttentionDirection.Bidirectional ? "bidirectional" : "unidirectional");
        json.WriteNumber("seed", pattern.Seed);
        foreach (string key in KeysOfMode[pattern.Mode])
        {
            switch (key)
            {
                case "num_local_blocks": json.WriteNumber(key, pattern.NumLocalBlocks); break;
                case "num_global_blocks": json.WriteNumber(key, pattern.NumGlobalBlocks); break;
                case "horizontal_global_attention": json.WriteBoolean(key, pattern.HorizontalGlobalAttention); break;
                case "num_different_global_patterns": json.WriteNumber(key, pattern.NumDifferentGlobalPatterns); break;
                case "num_random_blocks": json.WriteNumber(key, pattern.NumRandomBlocks); break;
                case "num_sliding_window_blocks": json.WriteNumber(key, pattern.NumSlidingWindowBlocks); break;
                case "local_window_blocks": WriteList(key, pattern.LocalWindowBlocks); break;
                case "global_block_indices": WriteList(key, pattern.GlobalBlockIndices); break;
                case "global_block_end_indices":
                    if (pattern.GlobalBlockEndIndices is { } ends) WriteList(key, ends);
                    break;
            }
        }

        json.WriteEndObject();

        void WriteList(string key, IReadOnlyList<int> values)
        {
            json.WriteStartArray(key);
            foreach (int value in values) json.WriteNumberValue(value);
            json.WriteEndArray();
        }
    }

    /// <summary>The pattern of a section <see cref="Write"/> wrote; <paramref name="source"/> names it in errors.</summary>
    public static SparseAttentionPattern? Parse(string section, string source) =>
        DeepSpeedConfig.Parse($$"""{"sparse_attention": {{section}}}""", source).Config.SparseAttention;

    /// <summary>The mode's name in a config ("fixed", "bigbird", ...).</summary>
    public static string ModeName(SparseAttentionMode mode) => mode.ToString().ToLowerInvariant();

    private static SparseAttentionMode ReadMode(JsonSection section)
    {
        string? name = section.String("mode");
        if (name is null) return SparseAttentionMode.Fixed;
        foreach (SparseAttentionMode mode in Enum.GetValues<SparseAttentionMode>())
            if (string.Equals(ModeName(mode), name, StringComparison.Ordinal)) return mode;
        section.Error("mode", $"unknown sparsity mode \"{name}\"; use dense, fixed, variable, bigbird or bslongformer");
        return SparseAttentionMode.Fixed;
    }

    private static SparseAttentionDirection ReadDirection(JsonSection section)
    {
        string? name = section.String("attention");
        switch (name)
        {
            case null or "bidirectional": return SparseAttentionDirection.Bidirectional;
            case "unidirectional": return SparseAttentionDirection.Unidirectional;
            default:
                section.Error("attention", $"unknown attention type \"{name}\"; use unidirectional or bidirectional");
                return SparseAttentionDirection.Bidirectional;
        }
    }

    private static int[]? IntList(JsonSection section, string key)
    {
        if (!section.TryTake(key, out var value)) return null;
        if (value.ValueKind != JsonValueKind.Array)
        {
            section.Error(key, $"expected a list of integers, found {JsonSection.Describe(value)}");
            return null;
        }

        var list = new List<int>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int entry))
            {
                section.Error(key, $"entry {list.Count} is {JsonSection.Describe(item)}: expected an integer");
                return null;
            }

            list.Add(entry);
        }

        return list.ToArray();
    }
}
