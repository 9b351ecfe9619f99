using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>Which axis of a parameter tensor parallelism splits (the runtime's SplitAxis).</summary>
internal enum SplitAxis
{
    None,
    Rows,
    Columns,
}

/// <summary>How one parameter is split across the tensor-parallel ranks; rows may split in equal groups (q, k, v).</summary>
internal sealed record ParameterSplit(SplitAxis Axis, int Groups)
{
    public static readonly ParameterSplit Replicated = new(SplitAxis.None, 1);
}

/// <summary>A tensor split that cannot run as written: the layer, and what is wrong with its input.</summary>
internal sealed record SplitProblem(string Layer, string Problem, LocationInfo? Location);

/// <summary>
/// The program one tensor-parallel rank runs: <see cref="Graph"/> has local shapes and the f/g collectives;
/// <see cref="Origins"/> gives, for each local op, the index of the model op it implements (so the pipeline cut,
/// made on the model's ops, applies); <see cref="Splits"/> is parallel to the graph's parameters.
/// </summary>
internal sealed record TensorSplitPlan(
    int Degree,
    IrGraph Graph,
    EquatableArray<int> Origins,
    EquatableArray<ParameterSplit> Splits,
    EquatableArray<SplitProblem> Problems);

/// <summary>
/// Applies Megatron's tensor split to a traced model, from <c>[Shard]</c> on its layers:
/// <list type="bullet">
/// <item>a column-parallel Linear keeps rows [r·out/t, (r+1)·out/t) of its weight and bias; its input passes through f;</item>
/// <item>a row-parallel Linear keeps columns [r·in/t, (r+1)·in/t) and no bias; g sums the partial outputs, then adds the bias;</item>
/// <item>a column-sharded attention splits by heads: qkv column-parallel in three groups (each rank keeps whole heads of
/// q, k and v), the core on the local heads, the output projection row-parallel.</item>
/// </list>
/// Every value is either replicated (the same on every rank) or split along its features; element-wise ops keep the
/// state, LayerNorm, the loss and unsharded layers need replicated inputs, and a row-parallel layer needs a split input.
/// A mismatch is a <see cref="SplitProblem"/> (SW0017): Megatron would need an extra gather or scatter there.
/// </summary>
internal static class TensorSplitPlanner
{
    public static TensorSplitPlan Plan(LayerNode root, IrGraph graph, int degree)
    {
        if (degree <= 1)
        {
            return new TensorSplitPlan(1, graph, Enumerable.Range(0, graph.Ops.Count).ToEquatableArray(),
                graph.Parameters.Select(_ => ParameterSplit.Replicated).ToEquatableArray(), EquatableArray<SplitProblem>.Empty);
        }
        return new Splitter(root, graph, degree).Run();
    }

    /// <summary>The [Shard] that governs an op's layer: its own, or for attention's inner Linears the attention's.</summary>
    public static (TensorShard Shard, int Groups, LayerNode? Node) ShardOf(LayerNode root, string layer)
    {
        var node = Find(root, layer);
        if (node is not null) return (node.Shard, 1, node);
        int dot = layer.LastIndexOf('.');
        if (dot < 0) return (TensorShard.None, 1, null);
        var parent = Find(root, layer.Substring(0, dot));
        if (parent is not { Kind: LayerKind.CausalSelfAttention } || parent.Shard != TensorShard.Column) return (TensorShard.None, 1, parent);
        return layer.Substring(dot + 1) == "qkv" ? (TensorShard.Column, 3, parent) : (TensorShard.Row, 1, parent);
    }

    public static LayerNode? Find(LayerNode root, string path)
    {
        if (path.Length == 0) return root;
        var node = root;
        foreach (var segment in path.Split('.'))
        {
            node = node.Child(segment);
            if (node is null) return null;
        }
        return node;
    }

    private sealed class Splitter
    {
        private readonly LayerNode _root;
        private readonly IrGraph _graph;
        private readonly int _t;
        private readonly List<IrValue> _values;
        private readonly List<IrOp> _ops = new();
        private readonly List<int> _origins = new();
        private readonly IrParameter[] _parameters;
        private readonly ParameterSplit[] _splits;
        private readonly List<bool> _split; // per value: split along its features (else replicated)
        private readonly List<SplitProblem> _problems = new();

        public Splitter(LayerNode root, IrGraph graph, int degree)
        {
            _root = root;
            _graph = graph;
            _t = degree;
            _values = graph.Values.ToList();
            _parameters = graph.Parameters.ToArray();
            _splits = graph.Parameters.Select(_ => ParameterSplit.Replicated).ToArray();
            _split = graph.Values.Select(_ => false).ToList();
        }

        public TensorSplitPlan Run()
        {
            for (int k = 0; k < _graph.Ops.Count; k++)
            {
                var op = _graph.Ops[k];
                switch (op.Kind)
                {
                    case OpKind.Linear:
                        Linear(op, k);
                        break;
                    case OpKind.Attention:
                        Attention(op, k);
                        break;
                    case OpKind.Gelu:
                        _split[op.Outputs[0]] = _split[op.Inputs[0]];
                        Add(op, k);
                        break;
                    case OpKind.Add:
                        if (_split[op.Inputs[0]] != _split[op.Inputs[1]])
                            Problem(op.Layer, "adds a column-split tensor to a replicated one");
                        _split[op.Outputs[0]] = _split[op.Inputs[0]] && _split[op.Inputs[1]];
                        Add(op, k);
                        break;
                    case OpKind.Embedding when Find(_root, op.Layer) is { Shard: TensorShard.Vocabulary }:
                        VocabularyEmbedding(op, k);
                        break;
                    case OpKind.CrossEntropy when _split[op.Inputs[0]]:
                        VocabularyCrossEntropy(op, k);
                        break;
                    default:
                        // Embedding, Positions, LayerNorm, CrossEntropy: replicated in, replicated out.
                        foreach (int input in op.Inputs)
                        {
                            if (_split[input]) Problem(op.Layer, "needs the whole tensor but gets a column-split one (a row-parallel layer must come first)");
                        }
                        Add(op, k);
                        break;
                }
            }

            bool[] differs = DiffersAcrossRanks();
            var values = _values.Select(v => (_split[v.Id] ? v with { Shape = Local(v.Shape) } : v) with { DiffersAcrossTensorRanks = differs[v.Id] }).ToList();
            var graph = _graph with
            {
                Values = values.ToEquatableArray(),
                Ops = _ops.ToEquatableArray(),
                Parameters = _parameters.ToEquatableArray(),
            };
            return new TensorSplitPlan(_t, graph, _origins.ToEquatableArray(), _splits.ToEquatableArray(), _problems.ToEquatableArray());
        }

        /// <summary>
        /// Per value of the local program, whether the ranks may hold different values: an op's outputs do when it reads
        /// such a value or a split parameter, except g's sum (<see cref="OpKind.TensorSum"/>), after which all agree.
        /// </summary>
        private bool[] DiffersAcrossRanks()
        {
            var differs = new bool[_values.Count];
            foreach (var op in _ops)
            {
                bool local = op.Kind != OpKind.TensorSum
                             && (op.Inputs.Any(value => differs[value]) || op.Parameters.Any(p => _splits[p].Axis != SplitAxis.None));
                foreach (int output in op.Outputs) differs[output] = local;
            }
            return differs;
        }

        private void Linear(IrOp op, int origin)
        {
            var (shard, groups, node) = ShardOf(_root, op.Layer);
            int x = op.Inputs[0];
            int inFeatures = op.Dims[0], outFeatures = op.Dims[1];
            switch (shard)
            {
                case TensorShard.Column:
                case TensorShard.Vocabulary: // the tied output head of a vocabulary-split table: column-parallel logits
                {
                    if (_split[x]) Problem(op.Layer, "is column-parallel but its input is already column-split");
                    int copied = NewValue(_values[x], op.Layer + ".f");
                    Add(new IrOp(OpKind.TensorCopy, op.Layer, EquatableArray.Of(x), EquatableArray.Of(copied), EquatableArray<int>.Empty, EquatableArray<int>.Empty), origin);
                    foreach (int p in op.Parameters) SplitParameter(p, new ParameterSplit(SplitAxis.Rows, groups));
                    _split[op.Outputs[0]] = true;
                    Add(op with { Inputs = EquatableArray.Of(copied), Dims = EquatableArray.Of(inFeatures, outFeatures / _t) }, origin);
                    break;
                }
                case TensorShard.Row:
                {
                    if (!_split[x])
                    {
                        Problem(op.Layer, "is row-parallel but its input is not column-split (Megatron would scatter it first)");
                        Add(op, origin);
                        break;
                    }
                    SplitParameter(op.Parameters[0], new ParameterSplit(SplitAxis.Columns, 1));
                    int partial = NewValue(_values[op.Outputs[0]], op.Layer + ".partial");
                    var bias = op.Parameters.Skip(1).ToEquatableArray();
                    Add(op with { Outputs = EquatableArray.Of(partial), Parameters = EquatableArray.Of(op.Parameters[0]), Dims = EquatableArray.Of(inFeatures / _t, outFeatures) }, origin);
                    Add(new IrOp(OpKind.TensorSum, op.Layer, EquatableArray.Of(partial), op.Outputs, bias, EquatableArray.Of(outFeatures)), origin);
                    break;
                }
                default:
                    if (_split[x]) Problem(op.Layer, "is not sharded but its input is column-split (mark it [Shard(ShardKind.Row)])");
                    Add(op, origin);
                    break;
            }
        }

        /// <summary>
        /// Each rank looks up the ids in its rows of the table (zero elsewhere) and g sums the partial outputs.
        /// </summary>
        private void VocabularyEmbedding(IrOp op, int origin)
        {
            int weight = op.Parameters[0];
            SplitParameter(weight, new ParameterSplit(SplitAxis.Rows, 1));
            int count = _parameters[weight].Shape[0];
            int partial = NewValue(_values[op.Outputs[0]], op.Layer + ".partial");
            Add(op with { Outputs = EquatableArray.Of(partial), Dims = EquatableArray.Of(op.Dims[0], count) }, origin);
            Add(new IrOp(OpKind.TensorSum, op.Layer, EquatableArray.Of(partial), op.Outputs, EquatableArray<int>.Empty, EquatableArray.Of(op.Dims[0])), origin);
        }

        /// <summary>
        /// The loss over vocabulary-split logits: per-row maximum, sum of exponentials and target logit are reduced over
        /// the ranks instead of gathering the logits; the first two are kept for the backward.
        /// </summary>
        private void VocabularyCrossEntropy(IrOp op, int origin)
        {
            var logits = _values[op.Inputs[0]];
            var rows = logits.Shape.Take(logits.Shape.Count - 1);
            int NewRowValue(string role)
            {
                int id = _values.Count;
                _values.Add(new IrValue(id, ValueKind.Real, rows.ToEquatableArray(), op.Layer.Length == 0 ? role : op.Layer + "." + role));
                _split.Add(false);
                return id;
            }
            var outputs = EquatableArray.Of(op.Outputs[0], NewRowValue("rowMax"), NewRowValue("rowSum"), NewRowValue("targetLogit"));
            Add(op with { Outputs = outputs, Dims = EquatableArray.Of(op.Dims[0] / _t, 1) }, origin);
        }

        private void Attention(IrOp op, int origin)
        {
            var node = Find(_root, op.Layer);
            if (node is null || node.Shard != TensorShard.Column)
            {
                if (_split[op.Inputs[0]]) Problem(op.Layer, "is not sharded but its input is column-split");
                Add(op, origin);
                return;
            }
            int sequence = op.Dims[0], heads = op.Dims[1], dim = op.Dims[2];
            _split[op.Outputs[0]] = true;
            var logSumExp = _values[op.Outputs[1]];
            _values[op.Outputs[1]] = logSumExp with { Shape = EquatableArray.Of(heads / _t, sequence) };
            Add(op with { Dims = EquatableArray.Of(sequence, heads / _t, dim / _t) }, origin);
        }

        private void SplitParameter(int id, ParameterSplit split)
        {
            if (_splits[id] == split) return; // a tied table is split once, where it first runs
            var p = _parameters[id];
            var shape = p.Shape.ToArray();
            if (split.Axis == SplitAxis.Rows) shape[0] /= _t;
            else shape[shape.Length - 1] /= _t;
            _parameters[id] = p with { Shape = shape.ToEquatableArray() };
            _splits[id] = split;
        }

        private int NewValue(IrValue like, string name)
        {
            int id = _values.Count;
            _values.Add(like with { Id = id, Name = name });
            _split.Add(_split[like.Id]);
            return id;
        }

        private void Add(IrOp op, int origin)
        {
            _ops.Add(op);
            _origins.Add(origin);
        }

        private void Problem(string layer, string problem)
        {
            var node = Find(_root, layer);
            _problems.Add(new SplitProblem(layer, problem, node?.ShardLocation ?? node?.Location));
        }

        private EquatableArray<int> Local(EquatableArray<int> shape)
        {
            var dims = shape.ToArray();
            dims[dims.Length - 1] /= _t;
            return dims.ToEquatableArray();
        }
    }
}
