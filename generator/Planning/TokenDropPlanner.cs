using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Checks, in a traced program, that each <c>[TokenDrop]</c> element can run on its kept tokens alone
/// (<see cref="TokenDropPlan"/>). The tracer put the element's ops between random-LTD's gather and scatter; they run on
/// <c>[batch, kept, width]</c> rows, so each must work per position (Linear, LayerNorm, GeLU, add, the tensor-parallel
/// copies) or be causal attention over the sequence, every tensor they pass must be <c>[sequence, features]</c> per
/// sample, and nothing after the element may read a tensor computed on the kept tokens but the scatter.
/// </summary>
internal static class TokenDropPlanner
{
    public static TokenDropPlan Plan(IrGraph graph, LayerNode root)
    {
        var elements = LayerPaths.Outermost(root, node => node.TokenDrop);
        if (elements.Count == 0) return TokenDropPlan.None(graph.Ops.Count);

        var element = Enumerable.Repeat(-1, graph.Ops.Count).ToArray();
        var problems = new List<TokenDropProblem>();
        var producer = graph.Producers();
        var soleReader = graph.SoleReaders();
        for (int index = 0; index < elements.Count; index++)
        {
            var node = elements[index];
            string? problem = node.Kind == LayerKind.User
                ? Analyse(graph, index, element, producer, soleReader)
                : "it is a built-in " + node.Kind + "; [TokenDrop] goes on a [Layer] class whose [Forward] takes the sequence";
            if (problem is not null) problems.Add(new TokenDropProblem(node.Path, problem, node.TokenDropLocation));
        }
        return new TokenDropPlan(elements.Select(node => node.Path).ToEquatableArray(), element.ToEquatableArray(), problems.ToEquatableArray());
    }

    /// <summary>Marks the ops of each call of element <paramref name="index"/>; returns why it cannot drop tokens, or null.</summary>
    private static string? Analyse(IrGraph graph, int index, int[] element, int[] producer, int[] soleReader)
    {
        for (int gather = 0; gather < graph.Ops.Count; gather++)
        {
            if (graph.Ops[gather].Kind != OpKind.TokenGather || graph.Ops[gather].Dims[2] != index) continue;
            int scatter = gather + 1;
            while (scatter < graph.Ops.Count && !(graph.Ops[scatter].Kind == OpKind.TokenScatter && graph.Ops[scatter].Dims[2] == index)) scatter++;
            if (scatter == graph.Ops.Count) return null; // the scatter is on the next pipeline stage: that stage's check reports it
            string? problem = AnalyseCall(graph, gather, scatter, producer, soleReader);
            if (problem is not null) return problem;
            for (int k = gather + 1; k < scatter; k++) element[k] = index;
        }
        return null;
    }

    private static string? AnalyseCall(IrGraph graph, int gather, int scatter, int[] producer, int[] soleReader)
    {
        int sequence = graph.Ops[gather].Dims[0];
        int gathered = graph.Ops[gather].Outputs[0];
        bool Inside(int value) => value == gathered || (producer[value] > gather && producer[value] < scatter);
        string PerPosition(int value) => "'" + graph.Values[value].Name + "' is " + Format(graph.Values[value].Shape) + " per sample, not [" + N(sequence) + ", features]";

        for (int k = gather + 1; k < scatter; k++)
        {
            var op = graph.Ops[k];
            switch (op.Kind)
            {
                case OpKind.Linear or OpKind.LayerNorm or OpKind.Gelu or OpKind.Add or OpKind.TensorCopy or OpKind.TensorSum:
                    break;
                case OpKind.Attention when op.Dims[0] == sequence:
                    break;
                default:
                    return "'" + op.Layer + "' (" + op.Kind + ") does not work position by position on the kept tokens";
            }
            foreach (int input in op.Inputs)
            {
                if (!Inside(input)) return "'" + op.Layer + "' reads '" + graph.Values[input].Name + "', which is not computed from the layer's input";
                if (!IsPerPosition(graph.Values[input], sequence)) return PerPosition(input);
            }
            if (!IsPerPosition(graph.Values[op.Outputs[0]], sequence)) return PerPosition(op.Outputs[0]);
        }

        int output = graph.Ops[scatter].Inputs[1];
        if (output == gathered) return "its forward returns its input unchanged";
        if (soleReader[output] != scatter) return "its output '" + graph.Values[output].Name + "' is also read inside it";
        for (int k = scatter + 1; k < graph.Ops.Count; k++)
        {
            foreach (int input in graph.Ops[k].Inputs)
            {
                if (producer[input] > gather && producer[input] < scatter)
                    return "'" + graph.Values[input].Name + "', computed on the kept tokens only, is read after it";
            }
        }
        if (producer[graph.Output] > gather && producer[graph.Output] < scatter) return "the program's output is computed inside it";
        return null;
    }

    private static bool IsPerPosition(IrValue value, int sequence) => value.Shape.Count == 2 && value.Shape[0] == sequence;

    private static string Format(EquatableArray<int> shape) => "[" + string.Join(", ", shape.Select(N)) + "]";

    private static string N(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
