using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Emit;

/// <summary>Writes the backend call for each forward op and each backward step: one concept, one place.</summary>
internal sealed class OpCallEmitter
{
    private readonly IrGraph _graph;
    private readonly BufferNames _names;
    private readonly EpiloguePlan _epilogues;
    private readonly GradientAliasPlan _aliases;
    private readonly Model.EquatableArray<BackwardStep> _backward;
    private readonly bool _fusedLoss;
    private readonly LayerDropPlan _layerDrop;
    private readonly TokenDropPlan _tokenDrop;

    /// <summary>The <c>[TokenDrop]</c> element whose kept tokens the op being written runs on; −1: every token.</summary>
    private int _tokenElement = -1;

    /// <param name="fusedLoss">
    /// The loss op writes its gradient in the forward when ForwardBackward asks (LossGradientFusionPlanner), and the
    /// backward skips it then.
    /// </param>
    public OpCallEmitter(IrGraph graph, BufferNames names, EpiloguePlan epilogues, GradientAliasPlan aliases, Model.EquatableArray<BackwardStep> backward,
        bool fusedLoss, LayerDropPlan layerDrop, TokenDropPlan tokenDrop)
    {
        _layerDrop = layerDrop;
        _tokenDrop = tokenDrop;
        _fusedLoss = fusedLoss;
        _graph = graph;
        _names = names;
        _epilogues = epilogues;
        _aliases = aliases;
        _backward = backward;
    }

    /// <summary>
    /// The calls of forward op <paramref name="k"/> (also when it is re-run for a checkpoint), run only while its
    /// <c>[LayerDrop]</c> element is kept where it is a branch op. A LayerNorm that also computes the residual add
    /// before it always runs: the add belongs to the stream.
    /// </summary>
    public IEnumerable<string> Forward(int k)
    {
        _tokenElement = _tokenDrop.Element[k];
        var lines = ForwardCalls(k).ToList();
        if (!_layerDrop.IsBranchOp(k) || _epilogues.AddBeforeNorm(k) >= 0) return lines;
        int element = _layerDrop.Owner[k];
        if (_layerDrop.BranchEnd[k] == 0) return Guarded(element, lines, braces: false);
        var op = _graph.Ops[k];
        string output = _names.Value(op.Outputs[0]);
        lines.Add($"Ops.Scale({output}, {output}, T.CreateTruncating(LayerKeepScale({Names.Int(element)})), {Count(op.Outputs[0])}); // kept: the branch scaled by 1/keep-probability");
        var guarded = Guarded(element, lines, braces: true);
        guarded.Add($"else Ops.Zero({output}); // skipped: the branch adds nothing to the residual stream");
        return guarded;
    }

    /// <summary>Lines that run only while <c>[LayerDrop]</c> element <paramref name="element"/> is kept (comments stay as they are).</summary>
    private static List<string> Guarded(int element, List<string> lines, bool braces)
    {
        var code = lines.Where(l => !l.StartsWith("//", System.StringComparison.Ordinal)).ToList();
        if (code.Count == 0) return lines;
        string condition = $"if (LayerKept({Names.Int(element)}))";
        if (code.Count == 1 && lines.Count == 1 && !braces) return new List<string> { condition + " " + lines[0] };
        var result = new List<string> { condition, "{" };
        result.AddRange(lines.Select(l => "    " + l));
        result.Add("}");
        return result;
    }

    private IEnumerable<string> ForwardCalls(int k)
    {
        var op = _graph.Ops[k];
        int gelu = _epilogues.LinearGelu[k];
        if (gelu >= 0)
        {
            string rows = Rows(op.Inputs[0]), inDim = Names.Int(op.Dims[0]), outDim = Names.Int(op.Dims[1]);
            yield return $"Ops.LinearGelu({Buffer(op.Inputs[0])}, {Param(op, 0)}, {OptionalParam(op, 1)}, {_names.Value(op.Outputs[0])}, {_names.Value(_graph.Ops[gelu].Outputs[0])}, {rows}, {inDim}, {outDim}); // and the GeLU after it";
            yield break;
        }
        if (_epilogues.IsFusedForward(k))
        {
            yield return "// GeLU: computed by the Linear before it (Ops.LinearGelu)";
            yield break;
        }
        int add = _epilogues.AddBeforeNorm(k);
        if (add >= 0)
        {
            var sum = _graph.Ops[add];
            yield return $"Ops.AddLayerNorm({Buffer(sum.Inputs[0])}, {Buffer(sum.Inputs[1])}, {_names.Value(sum.Outputs[0])}, {Param(op, 0)}, {Param(op, 1)}, {_names.Value(op.Outputs[0])}, {_names.Value(op.Outputs[1])}, {_names.Value(op.Outputs[2])}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}); // and the residual add before it";
            yield break;
        }
        if (_epilogues.IsFusedAdd(k))
        {
            yield return "// residual add: computed with the LayerNorm after it (Ops.AddLayerNorm)";
            yield break;
        }
        foreach (var line in Forward(op)) yield return line;
    }

    private IEnumerable<string> Forward(IrOp op)
    {
        if (op.Kind == OpKind.TokenIndices)
        {
            string element = Names.Int(op.Dims[1]), sequence = Names.Int(op.Dims[0]), kept = _names.Index(op.Outputs[0]);
            yield return $"if (TokensDropped({element}, {sequence})) Ops.LoadIndices(KeptTokenIndices({element}, {sequence}), {kept}); // random-LTD: the tokens this layer runs on";
            yield return $"else Ops.Positions({kept}, Batch, {sequence}); // every token: the identity, written where the index arena lives (nothing uploaded)";
            yield break;
        }
        if (op.Kind == OpKind.TensorCopy)
        {
            yield return $"Ops.AddBackward({Buffer(op.Inputs[0])}, {_names.Value(op.Outputs[0])}, {Count(op.Inputs[0])}, accumulate: false); // f: identity here, all-reduce in backward";
            yield break;
        }
        if (op.Kind == OpKind.TensorSum)
        {
            string y = _names.Value(op.Outputs[0]);
            yield return $"Ops.AddBackward({Buffer(op.Inputs[0])}, {y}, {Count(op.Inputs[0])}, accumulate: false);";
            yield return $"TensorParallelAllReduce({Reduced(y, op.Outputs[0])}); // g: sum the row-parallel partial outputs";
            if (op.Parameters.Count > 0)
                yield return $"Ops.AddBias({y}, {Param(op, 0)}, {Rows(op.Outputs[0])}, {Names.Int(op.Dims[0])});";
            yield break;
        }
        if (op.Kind == OpKind.Embedding && op.Dims.Count == 2)
        {
            string count = Names.Int(op.Dims[1]);
            yield return $"Ops.EmbeddingRange({Buffer(op.Inputs[0])}, {Param(op, 0)}, {_names.Value(op.Outputs[0])}, {Rows(op.Inputs[0], tokens: true)}, {Names.Int(op.Dims[0])}, TensorRank * {count}, {count}); // this rank's rows of the vocabulary";
            yield break;
        }
        if (op.Kind == OpKind.CrossEntropy && op.Outputs.Count > 1)
        {
            string logits = Buffer(op.Inputs[0]), targets = Buffer(op.Inputs[1]), rows = Rows(op.Inputs[0]), vocabulary = Names.Int(op.Dims[0]);
            string max = _names.Value(op.Outputs[1]), sum = _names.Value(op.Outputs[2]), target = _names.Value(op.Outputs[3]);
            yield return $"Ops.CrossEntropyRowMax({logits}, {max}, {rows}, {vocabulary}); // vocabulary-parallel: statistics, never the whole logits";
            yield return $"TensorParallelAllReduceMax({max});";
            yield return $"Ops.CrossEntropyPartials({logits}, {targets}, {max}, {sum}, {target}, {rows}, {vocabulary}, TensorRank * {vocabulary});";
            yield return $"TensorParallelAllReduce({sum});";
            yield return $"TensorParallelAllReduce({target});";
            yield return $"var loss = Ops.CrossEntropyFromPartials({max}, {sum}, {target}, {targets}, {rows});";
            yield break;
        }
        if (op.Kind == OpKind.CrossEntropy && _fusedLoss)
        {
            var step = LossBackwardStep();
            string logits = Buffer(op.Inputs[0]), targets = Buffer(op.Inputs[1]), rows = Rows(op.Inputs[0]), vocabulary = Names.Int(op.Dims[0]);
            string acc = step.Writes[0].Accumulate ? "accumulate: true" : "accumulate: false";
            yield return "var loss = FusingLossGradient";
            yield return $"    ? Ops.CrossEntropyWithGradient({logits}, {targets}, {_names.Gradient(step.Writes[0].Value)}, {rows}, {vocabulary}, LossGradientScale, {acc}) // and the backward's first op (ForwardBackward)";
            yield return $"    : Ops.CrossEntropy({logits}, {targets}, {rows}, {vocabulary});";
            yield break;
        }
        yield return ForwardCall(op);
    }

    private string ForwardCall(IrOp op)
    {
        string Out(int i) => _names.Value(op.Outputs[i]);
        string In(int i) => Buffer(op.Inputs[i]);
        switch (op.Kind)
        {
            case OpKind.Positions:
                return $"Ops.Positions({_names.Index(op.Outputs[0])}, Batch, {Names.Int(op.Dims[0])});";
            case OpKind.Embedding:
                return $"Ops.Embedding({In(0)}, {Param(op, 0)}, {Out(0)}, {Rows(op.Inputs[0], tokens: true)}, {Names.Int(op.Dims[0])});";
            case OpKind.Linear:
                return $"Ops.Linear({In(0)}, {Param(op, 0)}, {OptionalParam(op, 1)}, {Out(0)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}, {Names.Int(op.Dims[1])});";
            case OpKind.LayerNorm:
                return $"Ops.LayerNorm({In(0)}, {Param(op, 0)}, {Param(op, 1)}, {Out(0)}, {Out(1)}, {Out(2)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])});";
            case OpKind.Gelu:
                return $"Ops.Gelu({In(0)}, {Out(0)}, {Count(op.Inputs[0])});";
            case OpKind.Add:
                return $"Ops.Add({In(0)}, {In(1)}, {Out(0)}, {Count(op.Inputs[0])});";
            case OpKind.Attention:
                return $"Ops.Attention({In(0)}, {Out(0)}, {Out(1)}, Batch, {Sequence(op.Dims[0])}, {Names.Int(op.Dims[1])}, {Names.Int(op.Dims[2])});";
            case OpKind.TokenGather:
                return $"Ops.GatherTokens({In(0)}, {In(1)}, {Out(0)}, {TokenSizes(op)}); // the layer's input on its kept tokens";
            case OpKind.TokenScatter:
                return $"Ops.ScatterTokens({In(0)}, {In(1)}, {In(2)}, {Out(0)}, {TokenSizes(op)}); // its output on the kept tokens, its input on the others";
            case OpKind.CrossEntropy:
                return $"var loss = Ops.CrossEntropy({In(0)}, {In(1)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])});";
            default:
                throw new System.InvalidOperationException(op.Kind.ToString());
        }
    }

    /// <summary>The calls of backward step <paramref name="j"/>, run only while its element is kept where it is a branch op's.</summary>
    public IEnumerable<string> Backward(int j)
    {
        int op = _backward[j].Op;
        _tokenElement = _tokenDrop.Element[op];
        var lines = BackwardCalls(j).ToList();
        return _layerDrop.IsBranchOp(op) ? Guarded(_layerDrop.Owner[op], lines, braces: false) : lines;
    }

    private IEnumerable<string> BackwardCalls(int j)
    {
        var step = _backward[j];
        var op = _graph.Ops[step.Op];
        if (_epilogues.IsFusedBackward(j))
        {
            yield return "// GeLU backward: done by the Linear's backward before it (Ops.GeluLinearBackward)";
            yield break;
        }
        int gelu = _epilogues.GeluLinearBackward[j];
        if (gelu >= 0)
        {
            int pre = _graph.Ops[_backward[gelu].Op].Inputs[0];
            yield return $"Ops.GeluLinearBackward({_names.Value(pre)}, {Buffer(op.Inputs[0])}, {Param(op, 0)}, {_names.Gradient(op.Outputs[0])}, {_names.Gradient(pre)}, {ParamGrad(op, 0)}, {OptionalParamGrad(op, 1)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}, {Names.Int(op.Dims[1])}); // through the GeLU before it";
            yield break;
        }
        foreach (var line in Backward(step, j)) yield return line;
    }

    private IEnumerable<string> Backward(BackwardStep step, int j)
    {
        var op = _graph.Ops[step.Op];
        string In(int i) => Buffer(op.Inputs[i]);
        string Saved(int i) => _names.Value(op.Outputs[i]);
        string Dy() => _names.Gradient(op.Outputs[0]);
        string Dx(int i) => _names.Gradient(step.Writes[i].Value);
        string InPlaceNote(int logits) => _names.GradientOverValue(logits) ? " // in place: the logits' gradient takes their buffer" : "";
        string Acc(int i) => step.Writes[i].Accumulate ? "accumulate: true" : "accumulate: false";

        switch (op.Kind)
        {
            case OpKind.Embedding when op.Dims.Count == 2:
                yield return $"Ops.EmbeddingRangeBackward({In(0)}, {Dy()}, {ParamGrad(op, 0)}, {Rows(op.Inputs[0], tokens: true)}, {Names.Int(op.Dims[0])}, TensorRank * {Names.Int(op.Dims[1])}, {Names.Int(op.Dims[1])});";
                break;
            case OpKind.CrossEntropy when op.Outputs.Count > 1:
                yield return $"Ops.CrossEntropyRangeBackward({In(0)}, {In(1)}, {Saved(1)}, {Saved(2)}, {Dx(0)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}, TensorRank * {Names.Int(op.Dims[0])}, scale, {Acc(0)});" +
                    InPlaceNote(op.Inputs[0]);
                break;
            case OpKind.Embedding:
                yield return $"Ops.EmbeddingBackward({In(0)}, {Dy()}, {ParamGrad(op, 0)}, {Rows(op.Inputs[0], tokens: true)}, {Names.Int(op.Dims[0])});";
                break;
            case OpKind.Linear:
            {
                string dx = step.Writes[0].IsNone ? "null" : Dx(0);
                string acc = step.Writes[0].IsNone ? "accumulate: false" : Acc(0);
                yield return $"Ops.LinearBackward({In(0)}, {Param(op, 0)}, {Dy()}, {dx}, {ParamGrad(op, 0)}, {OptionalParamGrad(op, 1)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}, {Names.Int(op.Dims[1])}, {acc});";
                break;
            }
            case OpKind.LayerNorm:
                yield return $"Ops.LayerNormBackward({In(0)}, {Param(op, 0)}, {Saved(1)}, {Saved(2)}, {Dy()}, {Dx(0)}, {ParamGrad(op, 0)}, {ParamGrad(op, 1)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}, {Acc(0)});";
                break;
            case OpKind.Gelu:
                yield return $"Ops.GeluBackward({In(0)}, {Dy()}, {Dx(0)}, {Count(op.Inputs[0])}, {Acc(0)});";
                break;
            case OpKind.Add:
                for (int i = 0; i < 2; i++)
                {
                    if (step.Writes[i].IsNone) continue;
                    if (_layerDrop.BranchInput[step.Op] == i)
                    {
                        string element = Names.Int(_layerDrop.Owner[step.Op]);
                        yield return $"if (LayerKept({element})) Ops.Scale({Dy()}, {Dx(i)}, T.CreateTruncating(LayerKeepScale({element})), {Count(op.Inputs[0])}); // the branch's gradient, scaled as its output was";
                    }
                    else if (_aliases.IsElided(j, i))
                        yield return $"// {Dx(i)} is {Dy()}'s buffer: the residual gradient passes through without a copy";
                    else
                        yield return $"Ops.AddBackward({Dy()}, {Dx(i)}, {Count(op.Inputs[0])}, {Acc(i)});";
                }
                break;
            case OpKind.Attention:
                yield return $"Ops.AttentionBackward({In(0)}, {Saved(0)}, {Saved(1)}, {Dy()}, {Dx(0)}, Batch, {Sequence(op.Dims[0])}, {Names.Int(op.Dims[1])}, {Names.Int(op.Dims[2])}, {Acc(0)});";
                break;
            case OpKind.TokenGather:
                if (!step.Writes[0].IsNone)
                    yield return $"Ops.GatherTokensBackward({Dy()}, {In(1)}, {Dx(0)}, {TokenSizes(op)}, {Acc(0)}); // the kept tokens' rows";
                break;
            case OpKind.TokenScatter:
                if (!step.Writes[0].IsNone)
                    yield return $"Ops.ScatterTokensBackward({Dy()}, {In(2)}, {Dx(0)}, {TokenSizes(op)}, {Acc(0)}); // the skipped tokens' rows pass through";
                if (!step.Writes[1].IsNone)
                    yield return $"Ops.GatherTokens({Dy()}, {In(2)}, {Dx(1)}, {TokenSizes(op)}); // the kept tokens' rows, into the layer";
                break;
            case OpKind.TensorCopy:
                yield return $"TensorParallelAllReduce({Reduced(Dy(), op.Outputs[0])}); // f: the column-parallel layer's input gradient is a partial sum";
                yield return $"Ops.AddBackward({Dy()}, {Dx(0)}, {Count(op.Inputs[0])}, {Acc(0)});";
                break;
            case OpKind.TensorSum:
                if (op.Parameters.Count > 0)
                    yield return $"Ops.AddBiasBackward({Dy()}, {ParamGrad(op, 0)}, {Rows(op.Outputs[0])}, {Names.Int(op.Dims[0])});";
                if (!step.Writes[0].IsNone) yield return $"Ops.AddBackward({Dy()}, {Dx(0)}, {Count(op.Inputs[0])}, {Acc(0)}); // g: identity in backward";
                break;
            case OpKind.CrossEntropy when _fusedLoss:
                yield return "if (!TakeLossGradientWritten()) // else ForwardBackward's forward wrote it with the loss";
                yield return $"    Ops.CrossEntropyBackward({In(0)}, {In(1)}, {Dx(0)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}, scale, {Acc(0)});" +
                    InPlaceNote(op.Inputs[0]);
                break;
            case OpKind.CrossEntropy:
                yield return $"Ops.CrossEntropyBackward({In(0)}, {In(1)}, {Dx(0)}, {Rows(op.Inputs[0])}, {Names.Int(op.Dims[0])}, scale, {Acc(0)});" +
                    InPlaceNote(op.Inputs[0]);
                break;
            default:
                throw new System.InvalidOperationException(op.Kind.ToString());
        }
    }

    /// <summary>The backward step of the loss, the last forward op (LossGradientFusionPlanner found it first in the backward).</summary>
    private BackwardStep LossBackwardStep() => _backward.First(step => step.Op == _graph.Ops.Count - 1);

    private string Buffer(int value) => _graph.Values[value].Kind == ValueKind.Tokens ? _names.Index(value) : _names.Value(value);

    private string Param(IrOp op, int i) => _names.Parameter(op.Parameters[i]);

    private string ParamGrad(IrOp op, int i) => _names.ParameterGradient(op.Parameters[i]);

    private string OptionalParam(IrOp op, int i) => op.Parameters.Count > i ? Param(op, i) : "null";

    private string OptionalParamGrad(IrOp op, int i) => op.Parameters.Count > i ? ParamGrad(op, i) : "null";

    /// <summary>
    /// Rows (positions) a row-wise op covers: the batch times the value's rows per sample, or, inside a
    /// <c>[TokenDrop]</c> element, the batch times the element's kept tokens (its values are [sequence, features]).
    /// </summary>
    private string Rows(int value, bool tokens = false)
    {
        var v = _graph.Values[value];
        if (_tokenElement >= 0) return "Batch * " + Sequence(v.Shape[0]);
        long perSample = tokens ? v.ElementsPerSample : v.RowsPerSample;
        return "Batch * " + Names.Int(perSample);
    }

    private string Count(int value)
    {
        var v = _graph.Values[value];
        if (_tokenElement >= 0) return "Batch * " + Sequence(v.Shape[0]) + " * " + Names.Long(v.ElementsPerSample / v.Shape[0]);
        return "Batch * " + Names.Long(v.ElementsPerSample);
    }

    /// <summary>
    /// The buffer a tensor-parallel all-reduce moves: inside a <c>[TokenDrop]</c> element only its kept rows (the
    /// planned buffer holds every token's), else the whole buffer.
    /// </summary>
    private string Reduced(string buffer, int value)
        => _tokenElement >= 0 ? $"({buffer} with {{ Length = {Count(value)} }})" : buffer;

    /// <summary>A sequence length: inside a <c>[TokenDrop]</c> element, the tokens it keeps in this micro-batch.</summary>
    private string Sequence(int sequence)
        => _tokenElement >= 0 ? $"KeptTokens({Names.Int(_tokenElement)}, {Names.Int(sequence)})" : Names.Int(sequence);

    /// <summary>The size arguments of the token gather and scatter: batch, sequence, kept tokens, width.</summary>
    private static string TokenSizes(IrOp op)
        => $"Batch, {Names.Int(op.Dims[0])}, KeptTokens({Names.Int(op.Dims[2])}, {Names.Int(op.Dims[0])}), {Names.Int(op.Dims[1])}";
}
