using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Shardwise.Plans;
using Shardwise.Training.Config;

namespace Shardwise.Training.ModelCompression;

/// <summary>One student parameter and the teacher tensor it starts from; <see cref="Source"/> is the JSON path that chose it.</summary>
public sealed record TeacherCopy(ParameterSlot Student, string TeacherName, string Source);

/// <summary>
/// Layer reduction's map, a pure function of the config and the student's layout: which teacher tensor each student
/// parameter starts from (DeepSpeed's student_initialization, by parameter name: student <c>blocks.0.expand.weight</c>
/// ← teacher <c>blocks.3.expand.weight</c> for teacher_layer [3, …]). <see cref="Problems"/> are what the student
/// model alone shows wrong (a prefix naming no layers, more teacher layers than student layers, a module naming
/// nothing), as config errors with their JSON paths; the teacher's side is checked when its tensors are read.
/// </summary>
public sealed class StudentInitialization
{
    private StudentInitialization(IReadOnlyList<TeacherCopy> copies, IReadOnlyList<string> problems, int studentLayers)
    {
        Copies = copies;
        Problems = problems;
        StudentLayers = studentLayers;
    }

    public IReadOnlyList<TeacherCopy> Copies { get; }

    public IReadOnlyList<string> Problems { get; }

    /// <summary>The student's numbered layers under the prefix (0 when the prefix names none).</summary>
    public int StudentLayers { get; }

    public static StudentInitialization For(LayerReductionConfig config, ParameterLayout student, string model)
    {
        const string section = LayerReductionConfig.SectionPath;
        string prefix = config.ModuleNamePrefix + ".";
        var problems = new List<string>();
        var copies = new List<TeacherCopy>();

        var layerOf = new Dictionary<ParameterSlot, (int Layer, string Remainder)>();
        foreach (var slot in student.Slots)
            if (LayerOf(slot.Name, prefix) is { } layer) layerOf[slot] = layer;
        int depth = layerOf.Count == 0 ? 0 : layerOf.Values.Max(l => l.Layer) + 1;

        if (depth == 0)
            problems.Add($"{section}.module_name_prefix: '{config.ModuleNamePrefix}' names no numbered layers of {model} (its modules: {string.Join(", ", TopModules(student))})");
        else
        {
            if (config.KeepNumberLayer is { } keep && keep != depth)
                problems.Add(Invariant($"{section}.keep_number_layer: {keep}, but {model} has {depth} layers under '{config.ModuleNamePrefix}' (the [Model] decides the student's depth: make them agree)"));
            if (config.TeacherLayers.Count > depth)
                problems.Add(Invariant($"{section}.teacher_layer: names {config.TeacherLayers.Count} teacher layers, but {model} has {depth} layers under '{config.ModuleNamePrefix}' to start from them"));
        }

        foreach (var (slot, (layer, remainder)) in layerOf)
            if (layer < config.TeacherLayers.Count)
                copies.Add(new TeacherCopy(slot, Invariant($"{prefix}{config.TeacherLayers[layer]}.{remainder}"), Invariant($"{section}.teacher_layer[{layer}]")));

        for (int i = 0; i < config.OtherModuleNames.Count; i++)
        {
            string module = config.OtherModuleNames[i], path = Invariant($"{section}.other_module_name[{i}]");
            if (module == config.ModuleNamePrefix || module.StartsWith(prefix, StringComparison.Ordinal))
            {
                problems.Add($"{path}: '{module}' is under module_name_prefix; the layers start from the teacher layers teacher_layer names");
                continue;
            }
            var matched = student.Slots.Where(s => s.Name == module || s.Name.StartsWith(module + ".", StringComparison.Ordinal)).ToList();
            if (matched.Count == 0)
                problems.Add($"{path}: '{module}' names no parameter of {model} (its modules: {string.Join(", ", TopModules(student))})");
            foreach (var slot in matched)
            {
                if (copies.Any(c => c.Student == slot)) problems.Add($"{path}: '{module}' takes {slot.Name} a second time");
                else copies.Add(new TeacherCopy(slot, slot.Name, path));
            }
        }

        return new StudentInitialization(copies.OrderBy(c => c.Student.Offset).ToList(), problems, depth);
    }

    /// <summary>(3, "expand.weight") for "blocks.3.expand.weight" under "blocks."; null for other names.</summary>
    private static (int Layer, string Remainder)? LayerOf(string name, string prefix)
    {
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return null;
        int dot = name.IndexOf('.', prefix.Length);
        if (dot < 0) return null;
        return int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int layer)
            ? (layer, name[(dot + 1)..])
            : null;
    }

    private static IEnumerable<string> TopModules(ParameterLayout layout) =>
        layout.Slots.Select(s => s.Name.Split('.')[0]).Distinct(StringComparer.Ordinal);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
