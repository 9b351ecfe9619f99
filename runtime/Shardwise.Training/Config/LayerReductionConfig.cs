using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;

namespace Shardwise.Training.Config;

/// <summary>
/// compression_training.layer_reduction (DeepSpeed's student_initialization, for knowledge distillation): a shallower
/// student model starts from chosen layers of a trained teacher. Student layer i (the module
/// <c>{ModuleNamePrefix}.{i}</c>) takes the weights of teacher layer <c>TeacherLayers[i]</c>, each module of
/// <see cref="OtherModuleNames"/> (embeddings, final norm, head) takes the teacher's module of the same name, and every
/// other parameter keeps the seed's initialisation. The teacher is what <c>train --init-from</c> names.
/// </summary>
public sealed record LayerReductionConfig
{
    public const string SectionPath = CompressionTrainingConfig.SectionPath + ".layer_reduction";

    public bool Enabled { get; init; }

    /// <summary>keep_number_layer: the student's depth; when given, it must be the compiled model's.</summary>
    public int? KeepNumberLayer { get; init; }

    /// <summary>module_name_prefix: the name before the layer number ("blocks" for <c>blocks.3.expand.weight</c>).</summary>
    public string ModuleNamePrefix { get; init; } = "";

    /// <summary>teacher_layer: the teacher layer each student layer 0, 1, … starts from.</summary>
    public IReadOnlyList<int> TeacherLayers { get; init; } = [];

    /// <summary>other_module_name: modules copied from the teacher under their own names.</summary>
    public IReadOnlyList<string> OtherModuleNames { get; init; } = [];

    /// <summary>For --print-config: "layer reduction: blocks.0 ← teacher blocks.1, blocks.1 ← blocks.3; also tokens, finalNorm".</summary>
    public string Describe()
    {
        string layers = string.Join(", ", TeacherLayers.Select((teacher, student) =>
            string.Create(CultureInfo.InvariantCulture, $"{ModuleNamePrefix}.{student} ← {ModuleNamePrefix}.{teacher}")));
        string others = OtherModuleNames.Count == 0 ? "no other modules" : "also " + string.Join(", ", OtherModuleNames);
        return $"layer reduction from the --init-from teacher: {layers}; {others}";
    }

    /// <summary>
    /// The section's keys. DeepSpeed has no defaults for them (student_initialization indexes them directly), so with
    /// enabled true a missing module_name_prefix, teacher_layer or other_module_name is an error at its path.
    /// </summary>
    internal static LayerReductionConfig Read(JsonSection compression)
    {
        var section = compression.Section("layer_reduction");
        bool enabled = section.Bool("enabled") ?? false;
        int? keep = section.Int32("keep_number_layer", AutoRule.NotAllowed, min: 1);
        string? prefix = section.String("module_name_prefix");
        List<int>? teacher = section.TryTake("teacher_layer", out var layers) ? ReadLayerIndices(section, layers) : null;
        List<string>? others = section.TryTake("other_module_name", out var modules)
            ? CompressionModulePatterns.ReadStrings(modules, section.PathOf("other_module_name"), section.Diagnostics, "module names")
            : null;
        UnsupportedFeaturePolicy.ReportLeftovers(section);
        if (!enabled) return new LayerReductionConfig();

        const string required = "required when layer reduction is enabled (DeepSpeed has no default for it)";
        if (prefix is null) section.Error("module_name_prefix", required + ": the name before each layer's number, e.g. \"blocks\" for blocks.0.expand.weight");
        else if (prefix.Length == 0) section.Error("module_name_prefix", "is empty: give the name before each layer's number, e.g. \"blocks\"");
        if (teacher is null && !section.Has("teacher_layer")) section.Error("teacher_layer", required + ": the teacher layer each student layer starts from, e.g. [1, 3]");
        else if (teacher is { Count: 0 }) section.Error("teacher_layer", "is empty: name at least one teacher layer");
        if (others is null && !section.Has("other_module_name")) section.Error("other_module_name", required + ": the modules copied under their own names, e.g. [\"tokens\", \"finalNorm\"] ([] for none)");

        return new LayerReductionConfig
        {
            Enabled = true,
            KeepNumberLayer = keep,
            ModuleNamePrefix = prefix ?? "",
            TeacherLayers = teacher ?? [],
            OtherModuleNames = others ?? [],
        };
    }

    private static List<int>? ReadLayerIndices(JsonSection section, JsonElement value)
    {
        string path = section.PathOf("teacher_layer");
        if (value.ValueKind != JsonValueKind.Array)
        {
            section.Diagnostics.Error(path, $"expected a list of teacher layer indices, found {JsonSection.Describe(value)}");
            return null;
        }

        var layers = new List<int>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int layer) && layer >= 0) layers.Add(layer);
            else section.Diagnostics.Error($"{path}[{index}]", $"expected a layer index (0 or more), found {JsonSection.Describe(item)}");
            index++;
        }
        return layers;
    }
}
