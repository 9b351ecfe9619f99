using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Plans;

namespace Shardwise.Training.Progress;

/// <summary>One module of the model's layer tree with its parameters and the FLOPs of its ops, per sample.</summary>
/// <param name="Path">The layer path (<c>blocks.0.attention</c>); "" is the model itself.</param>
/// <param name="Depth">0 for the model, 1 for its layers, 2 for theirs.</param>
public sealed record ModuleCost(string Path, int Depth, long Parameters, long ForwardFlopsPerSample, long BackwardFlopsPerSample);

/// <summary>
/// The module tree of a generated program, from its ops' layer paths and its parameters' names, each module summing
/// what its sub-modules hold: what DeepSpeed's profiler reads from <c>nn.Module</c> hooks, here from the static plan.
/// A parameter belongs to the module its name less the last segment names (<c>blocks.0.expand.weight</c> →
/// <c>blocks.0.expand</c>); a tied one counts once, where it is laid out.
/// </summary>
public static class ModuleCosts
{
    /// <summary>Every module in first-use order (the model first), ancestors before descendants.</summary>
    public static IReadOnlyList<ModuleCost> Of(IReadOnlyList<OperationCost> operations, ParameterLayout layout)
    {
        var order = new List<string> { "" };
        var totals = new Dictionary<string, (long Parameters, long Forward, long Backward)>(StringComparer.Ordinal) { [""] = default };

        void Add(string path, long parameters, long forward, long backward)
        {
            foreach (string module in SelfAndAncestors(path))
            {
                if (!totals.TryGetValue(module, out var total)) order.Add(module);
                totals[module] = (total.Parameters + parameters, total.Forward + forward, total.Backward + backward);
            }
        }

        foreach (var op in operations) Add(op.Layer, 0, op.ForwardFlopsPerSample, op.BackwardFlopsPerSample);
        foreach (var slot in layout.Slots)
        {
            int dot = slot.Name.LastIndexOf('.');
            Add(dot < 0 ? "" : slot.Name[..dot], slot.Length, 0, 0);
        }

        // Ancestors first: a module's ancestors were added by its first op or parameter already; keep tree order stable.
        var index = order.Select((path, i) => (path, i)).ToDictionary(p => p.path, p => p.i, StringComparer.Ordinal);
        return order
            .OrderBy(path => path, Comparer<string>.Create((a, b) => CompareInTree(a, b, index)))
            .Select(path => new ModuleCost(path, DepthOf(path), totals[path].Parameters, totals[path].Forward, totals[path].Backward))
            .ToList();
    }

    public static int DepthOf(string path) => path.Length == 0 ? 0 : path.Count(c => c == '.') + 1;

    private static IEnumerable<string> SelfAndAncestors(string path)
    {
        yield return "";
        for (int dot = path.IndexOf('.'); dot >= 0; dot = path.IndexOf('.', dot + 1)) yield return path[..dot];
        if (path.Length > 0) yield return path;
    }

    /// <summary>Depth-first: compare the first differing ancestor by first use, a module before its descendants.</summary>
    private static int CompareInTree(string a, string b, Dictionary<string, int> firstUse)
    {
        var left = SelfAndAncestors(a).ToList();
        var right = SelfAndAncestors(b).ToList();
        for (int i = 0; i < Math.Min(left.Count, right.Count); i++)
        {
            if (left[i] != right[i]) return firstUse[left[i]].CompareTo(firstUse[right[i]]);
        }
        return left.Count.CompareTo(right.Count);
    }
}
