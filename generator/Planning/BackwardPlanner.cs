using System.Collections.Generic;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>A gradient an op's backward produces: into <see cref="Value"/>'s gradient buffer, overwriting or adding.</summary>
internal sealed record GradientWrite(int Value, bool Accumulate)
{
    /// <summary>The input needs no gradient.</summary>
    public static readonly GradientWrite None = new(-1, false);

    public bool IsNone => Value < 0;
}

/// <summary>
/// The backward of forward op <see cref="Op"/>. <see cref="Writes"/> is parallel to the op's inputs: <see cref="GradientWrite.None"/> where the
/// input needs no gradient (token indices, or values that depend on no parameter).
/// </summary>
internal sealed record BackwardStep(int Op, EquatableArray<GradientWrite> Writes);

/// <summary>
/// Derives the backward pass from the forward op list by reverse-mode differentiation. The first gradient that
/// reaches a value overwrites its buffer and later ones add to it, so no buffer is ever zeroed.
/// </summary>
internal static class BackwardPlanner
{
    public static EquatableArray<BackwardStep> Plan(IrGraph graph)
    {
        var requiresGradient = RequiresGradient(graph);
        var hasGradient = new bool[graph.Values.Count];
        if (!graph.OutputIsLoss) hasGradient[graph.Output] = true; // the caller supplies d(output)

        var steps = new List<BackwardStep>();
        for (int k = graph.Ops.Count - 1; k >= 0; k--)
        {
            var op = graph.Ops[k];
            bool reached = op.Kind == OpKind.CrossEntropy ? op.Outputs[0] == graph.Output : hasGradient[op.Outputs[0]];
            if (!reached || !requiresGradient[op.Outputs[0]]) continue;

            var writes = new List<GradientWrite>();
            foreach (int input in op.Inputs)
            {
                if (!requiresGradient[input])
                {
                    writes.Add(GradientWrite.None);
                    continue;
                }
                writes.Add(new GradientWrite(input, hasGradient[input]));
                hasGradient[input] = true;
            }
            steps.Add(new BackwardStep(k, writes.ToEquatableArray()));
        }
        return steps.ToEquatableArray();
    }

    /// <summary>A value needs a gradient when it is a real input or depends on a parameter or on a real input.</summary>
    public static bool[] RequiresGradient(IrGraph graph)
    {
        var requires = new bool[graph.Values.Count];
        foreach (var input in graph.Inputs)
        {
            if (graph.Values[input.Value].Kind == ValueKind.Real) requires[input.Value] = true;
        }
        foreach (var op in graph.Ops)
        {
            bool any = op.Parameters.Count > 0;
            foreach (int input in op.Inputs) any |= requires[input];
            foreach (int output in op.Outputs)
            {
                if (graph.Values[output].Kind == ValueKind.Real) requires[output] = any;
            }
        }
        return requires;
    }
}
