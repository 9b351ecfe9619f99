using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Shardwise.Plans;
using Shardwise.Training.Config;

namespace Shardwise.Training.ModelCompression;

/// <summary>A config problem found against the model: the JSON path it is about and what is wrong.</summary>
public sealed record CompressionProblem(string JsonPath, string Message)
{
    public override string ToString() => $"{JsonPath}: {Message}";
}

/// <summary>
/// Which of the model's modules each compression_training group covers, by DeepSpeed's rule: a group's patterns are
/// regular expressions searched in the module names ("*" alone: every module), a module may belong to one group per
/// technique. The compressible modules are the layout's 2-D weights (Linears and embedding tables), named without
/// ".weight". A pattern that matches nothing is a problem, not a silent no-op: it is almost always a typo.
/// </summary>
public sealed class CompressionPlan
{
    private CompressionPlan(IReadOnlyList<CompressedModule> modules, IReadOnlyList<CompressionProblem> problems)
    {
        Modules = modules;
        Problems = problems;
    }

    /// <summary>The modules some technique touches, in layout order.</summary>
    public IReadOnlyList<CompressedModule> Modules { get; }

    public IReadOnlyList<CompressionProblem> Problems { get; }

    /// <summary>The 2-D weights of <paramref name="layout"/> as modules, nothing assigned yet.</summary>
    public static IReadOnlyList<CompressedModule> CompressibleModules(ParameterLayout layout)
    {
        var byName = layout.Slots.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var modules = new List<CompressedModule>();
        foreach (var slot in layout.Slots)
        {
            if (slot.Shape.Length != 2 || !slot.Name.EndsWith(".weight", StringComparison.Ordinal)) continue;
            string name = slot.Name[..^".weight".Length];
            long? bias = byName.TryGetValue(name + ".bias", out var b) && b.Length == slot.Shape[0] ? b.Offset : null;
            modules.Add(new CompressedModule(name, slot.Offset, slot.Shape[0], slot.Shape[1], bias, null, null, null));
        }
        return modules;
    }

    /// <param name="everyPatternMatches">
    /// False for a pipeline stage's layout, which holds some of the model's modules: a pattern may find its modules on
    /// another stage (the trainer checked the patterns against the whole model first).
    /// </param>
    public static CompressionPlan For(ParameterLayout layout, CompressionTrainingConfig config, bool everyPatternMatches = true)
    {
        var modules = CompressibleModules(layout).ToList();
        var problems = new List<CompressionProblem>();
        var quantization = config.WeightQuantization;
        if (quantization.Enabled)
        {
            for (int g = 0; g < quantization.Groups.Count; g++)
            {
                int group = g;
                Assign(modules, quantization.Groups[g].Modules, problems, m => m.QuantizationGroup is not null, m => m with { QuantizationGroup = group }, everyPatternMatches);
            }
            foreach (var module in modules.Where(m => m.QuantizationGroup is not null && m.WeightLength % quantization.QuantizeGroups != 0))
                problems.Add(new(WeightQuantizationConfig.SectionPath + ".shared_parameters.quantize_groups",
                    $"{quantization.QuantizeGroups} groups do not divide {module.Name}.weight's {module.WeightLength} elements [{module.Rows}, {module.Columns}]"));
        }
        if (config.SparsePruning.Enabled)
        {
            foreach (var group in config.SparsePruning.Groups)
                Assign(modules, group.Modules, problems, m => m.SparseDenseRatio is not null, m => m with { SparseDenseRatio = group.DenseRatio }, everyPatternMatches);
        }
        if (config.RowPruning.Enabled)
        {
            foreach (var group in config.RowPruning.Groups)
                Assign(modules, group.Modules, problems, m => m.RowDenseRatio is not null, m => m with { RowDenseRatio = group.DenseRatio }, everyPatternMatches);
        }
        if (config.HeadPruning is { Enabled: true, NumHeads: { } heads })
        {
            foreach (var group in config.HeadPruning.Groups)
                Assign(modules, group.Modules, problems, m => m.HeadDenseRatio is not null, m => m with { HeadDenseRatio = group.DenseRatio, Heads = heads }, everyPatternMatches);
            // DeepSpeed reshapes the output projection's input columns into num_heads runs (weight.t().reshape(num_heads, -1, out)).
            foreach (var module in modules.Where(m => m.HeadDenseRatio is not null && m.Columns % heads != 0))
                problems.Add(new(config.HeadPruning.SectionPath + ".shared_parameters.num_heads",
                    $"{heads} heads do not divide the {module.Columns} input columns of {module.Name}.weight [{module.Rows}, {module.Columns}] (head pruning masks an attention output projection's columns head by head)"));
        }
        if (config.ActivationQuantization.Enabled)
        {
            foreach (var group in config.ActivationQuantization.Groups)
                Assign(modules, group.Modules, problems, m => m.ActivationBits is not null, m => m with { ActivationBits = group.Bits }, everyPatternMatches);
        }
        var touched = modules.Where(m => m.QuantizationGroup is not null || m.SparseDenseRatio is not null || m.RowDenseRatio is not null
                                         || m.HeadDenseRatio is not null || m.ActivationBits is not null).ToList();
        return new CompressionPlan(touched, problems);
    }

    /// <summary>Gives <paramref name="group"/>'s setting to every module one of its patterns finds.</summary>
    private static void Assign(List<CompressedModule> modules, CompressionModuleGroup group, List<CompressionProblem> problems,
        Func<CompressedModule, bool> alreadyAssigned, Func<CompressedModule, CompressedModule> assign, bool everyPatternMatches)
    {
        for (int p = 0; p < group.Modules.Count; p++)
        {
            string pattern = group.Modules[p];
            string path = $"{group.JsonPath}.modules[{p}]";
            int found = 0;
            for (int i = 0; i < modules.Count; i++)
            {
                if (!Matches(pattern, modules[i].Name)) continue;
                found++;
                if (alreadyAssigned(modules[i]))
                {
                    // DeepSpeed raises on a module claimed twice by one technique ("is already added to compression").
                    problems.Add(new(path, $"\"{pattern}\" matches {modules[i].Name}, which another group of this technique already covers"));
                    continue;
                }
                modules[i] = assign(modules[i]);
            }
            if (found == 0 && everyPatternMatches)
                problems.Add(new(path, $"\"{pattern}\" matches none of the model's compressible modules ({Listing(modules)})"));
        }
    }

    /// <summary>DeepSpeed's rule: the pattern is a regular expression searched in the module's name; "*" alone matches every module.</summary>
    public static bool Matches(string pattern, string module) => pattern == "*" || Regex.IsMatch(module, pattern, RegexOptions.CultureInvariant);

    /// <summary>The module names with block indices folded, e.g. "tokens, blocks.N.attention.qkv (×4), …".</summary>
    private static string Listing(IReadOnlyList<CompressedModule> modules)
    {
        var folded = modules.Select(m => Regex.Replace(m.Name, @"\.\d+(?=\.|$)", ".N")).ToList();
        return string.Join(", ", folded.Distinct(StringComparer.Ordinal).Select(n => folded.Count(f => f == n) is var c && c > 1 ? $"{n} (×{c})" : n));
    }
}
