using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Finds, in a traced program, what progressive layer drop may skip (<see cref="LayerDropPlan"/>). A
/// <c>[LayerDrop]</c> element must be a chain of residual branches: its ops are consecutive and read one value from
/// outside, the stream x; each op is either a residual add <c>x' = x + b</c> of the current stream and a branch output
/// b, or a branch op that reads only the current stream and its own branch's values; each branch ends in a Linear (or
/// a tensor-parallel sum of one), whose output only its add reads, and the element ends with an add. Then skipping an
/// element is exact: its branches are not run, their outputs are zero, and the element passes its input through. The
/// Linear ending matters because a kept branch's output is scaled in place, and a Linear's backward never reads its
/// output (attention's, say, does).
/// </summary>
internal static class LayerDropPlanner
{
    public static LayerDropPlan Plan(IrGraph graph, LayerNode root)
    {
        var elements = LayerPaths.Outermost(root, node => node.LayerDrop);
        if (elements.Count == 0) return LayerDropPlan.None(graph.Ops.Count);

        int n = graph.Ops.Count;
        var owner = Enumerable.Repeat(-1, n).ToArray();
        var branchInput = Enumerable.Repeat(-1, n).ToArray();
        var branchEnd = new int[n];
        var problems = new List<LayerDropProblem>();
        var producer = graph.Producers();
        var soleReader = graph.SoleReaders();

        for (int index = 0; index < elements.Count; index++)
        {
            var element = elements[index];
            string? problem = Analyse(graph, element.Path, index, owner, branchInput, branchEnd, producer, soleReader);
            if (problem is null) continue;
            problems.Add(new LayerDropProblem(element.Path, problem, element.LayerDropLocation));
            for (int k = 0; k < n; k++)
            {
                if (owner[k] != index) continue;
                owner[k] = -1;
                branchInput[k] = -1;
                branchEnd[k] = 0;
            }
        }

        return new LayerDropPlan(elements.Select(element => element.Path).ToEquatableArray(), owner.ToEquatableArray(), branchInput.ToEquatableArray(), branchEnd.ToEquatableArray(),
            problems.ToEquatableArray());
    }

    /// <summary>Marks the element's ops; returns why it is not a chain of residual branches, or null.</summary>
    private static string? Analyse(IrGraph graph, string layer, int index, int[] owner, int[] branchInput, int[] branchEnd, int[] producer, int[] soleReader)
    {
        int first = -1, last = -1;
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            if (!LayerPaths.Inside(graph.Ops[k].Layer, layer) || IsTokenDropWrapper(graph.Ops[k].Kind)) continue;
            if (first < 0) first = k;
            else if (last != k - 1) return "its ops are not consecutive in the forward";
            last = k;
        }
        if (first < 0) return null; // on another pipeline stage

        var outside = new List<int>(); // what the element reads from before it: the residual stream, alone
        for (int k = first; k <= last; k++)
        {
            foreach (int input in graph.Ops[k].Inputs)
            {
                if (producer[input] >= first && producer[input] <= last) continue;
                if (graph.Values[input].Kind != ValueKind.Real) return "it reads token indices";
                if (!outside.Contains(input)) outside.Add(input);
            }
        }
        if (outside.Count != 1)
            return "it reads " + N(outside.Count) + " values from before it (" + string.Join(", ", outside.ConvertAll(v => "'" + graph.Values[v].Name + "'")) + "), not one residual stream";
        int stream = outside[0];

        var branch = new HashSet<int>(); // values computed by the current branch
        int adds = 0;
        for (int k = first; k <= last; k++)
        {
            var op = graph.Ops[k];
            owner[k] = index;
            if (op.Kind == OpKind.Add && op.Inputs[0] != op.Inputs[1] && (op.Inputs[0] == stream || op.Inputs[1] == stream))
            {
                int b = op.Inputs[0] == stream ? 1 : 0;
                int value = op.Inputs[b];
                if (!branch.Contains(value)) return "its residual add '" + graph.Values[op.Outputs[0]].Name + "' adds '" + graph.Values[value].Name + "', which no branch of it computes";
                var end = graph.Ops[producer[value]];
                if (end.Kind != OpKind.Linear && end.Kind != OpKind.TensorSum)
                    return "the branch ending in '" + graph.Values[value].Name + "' does not end in a Linear (it ends in " + end.Kind + ")";
                if (soleReader[value] != k) return "the output of branch '" + end.Layer + "' is read by more than its residual add";
                branchInput[k] = b;
                branchEnd[producer[value]] = 1;
                stream = op.Outputs[0];
                branch.Clear();
                adds++;
                continue;
            }
            foreach (int input in op.Inputs)
            {
                if (input != stream && !branch.Contains(input))
                    return "'" + (op.Layer.Length == 0 ? op.Kind.ToString() : op.Layer) + "' reads '" + graph.Values[input].Name + "', which is neither the residual stream nor its own branch's";
            }
            foreach (int output in op.Outputs) branch.Add(output);
        }
        if (adds == 0) return "it has no residual add x + f(x)";
        if (branch.Count > 0) return "it does not end with a residual add (the forward is not x = x + f(x))";

        // A branch's values are read only inside the branch: nothing after the element sees what a skipped branch did not compute.
        for (int k = last + 1; k < graph.Ops.Count; k++)
        {
            foreach (int input in graph.Ops[k].Inputs)
            {
                if (producer[input] >= first && producer[input] <= last && branchInput[producer[input]] < 0)
                    return "'" + graph.Values[input].Name + "', computed inside a branch, is read after the element";
            }
        }
        if (InElementOutput(graph, first, last, producer, branchInput)) return "the program's output is computed inside it";
        return null;
    }

    /// <summary>Random-LTD's gather and scatter around a <c>[TokenDrop]</c> element run whether or not the element is skipped.</summary>
    private static bool IsTokenDropWrapper(OpKind kind) => kind is OpKind.TokenIndices or OpKind.TokenGather or OpKind.TokenScatter;

    private static bool InElementOutput(IrGraph graph, int first, int last, int[] producer, int[] branchInput)
    {
        int made = producer[graph.Output];
        return made >= first && made <= last && branchInput[made] < 0;
    }

    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);
}
