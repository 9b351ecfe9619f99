using System.Collections.Generic;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// The static cost of one forward op and its backward, per sample. <see cref="NewParameterElements"/> counts the
/// parameters this op is the first to use (a tied parameter is counted once, where it first runs);
/// <see cref="ActivationBytes"/> the tensors its backward reads that no earlier op already keeps, held from the
/// forward to the backward of each micro-batch.
/// </summary>
internal sealed record OpCost(long ForwardFlops, long BackwardFlops, long NewParameterElements, long ActivationBytes)
{
    public long Flops => ForwardFlops + BackwardFlops;
}

/// <summary>
/// FLOPs and bytes per op from the static shapes, with no profiling (all counts per sample; rows = positions per sample):
/// <list type="bullet">
/// <item>Linear: forward 2·rows·in·out (+ rows·out for the bias); backward twice the forward (input and weight gradients).</item>
/// <item>Attention core: forward 4·T²·d (QKᵀ and P·V) + heads·T² (softmax); backward 8·T²·d (dV, dP, dQ, dK) plus
/// the forward's QKᵀ and softmax again (only the log-sum-exp is saved), 10·T²·d + heads·T².</item>
/// <item>Embedding: a gather of rows·d forward and a scatter-add of rows·d backward.</item>
/// <item>LayerNorm, GeLU, +, cross-entropy: one FLOP per element forward (of the output, or of the logits for the
/// loss), two backward. Positions: free.</item>
/// </list>
/// Bytes: 4 per element, both for fp32 values and for int32 token indices.
/// </summary>
internal static class PipelineCostModel
{
    public const int BytesPerElement = 4;

    public static EquatableArray<OpCost> Estimate(IrGraph graph)
    {
        var costs = new List<OpCost>(graph.Ops.Count);
        var seenParameters = new HashSet<int>();
        var keptValues = new HashSet<int>();
        foreach (var op in graph.Ops)
        {
            var (forward, backward) = Flops(graph, op);

            long parameters = 0;
            foreach (int id in op.Parameters)
            {
                if (seenParameters.Add(id)) parameters += graph.Parameters[id].Elements;
            }

            long bytes = 0;
            foreach (int value in ActivationPlanner.SavedForBackward(op))
            {
                if (keptValues.Add(value)) bytes += graph.Values[value].ElementsPerSample * BytesPerElement;
            }

            costs.Add(new OpCost(forward, backward, parameters, bytes));
        }
        return costs.ToEquatableArray();
    }

    private static (long Forward, long Backward) Flops(IrGraph graph, IrOp op)
    {
        var output = graph.Values[op.Outputs[0]];
        switch (op.Kind)
        {
            case OpKind.Positions:
            case OpKind.TensorCopy: // communication, not arithmetic
            case OpKind.TensorSum:
            case OpKind.TokenIndices: // random-LTD's index load, gather and scatter move rows, no arithmetic
            case OpKind.TokenGather:
            case OpKind.TokenScatter:
                return (0, 0);
            case OpKind.Embedding:
                return (output.ElementsPerSample, output.ElementsPerSample);
            case OpKind.Linear:
            {
                long rows = graph.Values[op.Inputs[0]].RowsPerSample;
                long inFeatures = op.Dims[0], outFeatures = op.Dims[1];
                long forward = 2 * rows * inFeatures * outFeatures + (op.Parameters.Count > 1 ? rows * outFeatures : 0);
                return (forward, 2 * forward);
            }
            case OpKind.Attention:
            {
                long sequence = op.Dims[0], heads = op.Dims[1], dim = op.Dims[2];
                long square = sequence * sequence;
                return (4 * square * dim + heads * square, 10 * square * dim + heads * square);
            }
            case OpKind.CrossEntropy:
            {
                long logits = graph.Values[op.Inputs[0]].ElementsPerSample;
                return (logits, 2 * logits);
            }
            default: // LayerNorm, Gelu, Add
                return (output.ElementsPerSample, 2 * output.ElementsPerSample);
        }
    }
}
