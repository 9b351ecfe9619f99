using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Model;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator.Ir;

/// <summary>
/// Lowers built-in layers to IR ops, checking shapes as it goes. Parameters are created the first time their layer
/// runs, so the layout follows execution order, and a layer used twice (a tied head) shares its parameters.
/// </summary>
internal sealed class OpBuilder
{
    private readonly Dictionary<string, int> _parameterIds = new();
    private readonly HashSet<int> _positionValues = new();

    public List<IrValue> Values { get; } = new();

    public List<IrOp> Ops { get; } = new();

    public List<IrParameter> Parameters { get; } = new();

    public int NewValue(ValueKind kind, IEnumerable<int> shape, string name, bool fp32Statistics = false)
    {
        int id = Values.Count;
        Values.Add(new IrValue(id, kind, shape.ToEquatableArray(), name, fp32Statistics));
        return id;
    }

    public int Positions(int ids, string layer, LocationInfo? location)
    {
        var input = RequireKind(ids, ValueKind.Tokens, "Positions()", location);
        if (input.Shape.Count != 1)
            throw Mismatch("Positions()", "tokens [batch, sequence]", Describe(input), location);
        int output = NewValue(ValueKind.Tokens, input.Shape, Join(layer, "positions"));
        _positionValues.Add(output);
        Emit(OpKind.Positions, layer, new[] { ids }, new[] { output }, new int[0], new[] { input.Shape[0] });
        return output;
    }

    public int Embedding(LayerNode node, EquatableArray<LayerAccess> path, int ids, LocationInfo? location)
    {
        var input = RequireKind(ids, ValueKind.Tokens, node.Path, location);
        if (_positionValues.Contains(ids) && node.Dims[0] < input.Shape[0])
            throw Mismatch(node.Path, $"a table of at least {input.Shape[0]} rows for positions 0..{input.Shape[0] - 1}", $"{node.Dims[0]} rows", location);
        int weight = Parameter(node, path, "weight", "Weight", new[] { node.Dims[0], node.Dims[1] }, ParameterInit.Normal);
        int output = NewValue(ValueKind.Real, input.Shape.Concat(new[] { node.Dims[1] }), Join(node.Path, "out"));
        Emit(OpKind.Embedding, node.Path, new[] { ids }, new[] { output }, new[] { weight }, new[] { node.Dims[1] });
        return output;
    }

    /// <summary>The tied output head: logits = x · Eᵀ, a Linear without bias that reuses the embedding table.</summary>
    public int Unembed(LayerNode node, EquatableArray<LayerAccess> path, int x, LocationInfo? location)
    {
        int vocabulary = node.Dims[0], dim = node.Dims[1];
        var input = RequireFeatures(x, dim, node.Path + " (Unembed)", location);
        int weight = Parameter(node, path, "weight", "Weight", new[] { vocabulary, dim }, ParameterInit.Normal);
        int output = NewValue(ValueKind.Real, WithLast(input.Shape, vocabulary), Join(node.Path, "logits"));
        Emit(OpKind.Linear, node.Path, new[] { x }, new[] { output }, new[] { weight }, new[] { dim, vocabulary });
        return output;
    }

    public int Linear(LayerNode node, EquatableArray<LayerAccess> path, int x, LocationInfo? location)
        => Linear(node.Path, node.Dims[0], node.Dims[1], node.Bias, node, path, "", x, location);

    private int Linear(string layer, int inFeatures, int outFeatures, bool bias, LayerNode owner, EquatableArray<LayerAccess> path,
        string memberPrefix, int x, LocationInfo? location)
    {
        var input = RequireFeatures(x, inFeatures, layer, location);
        string prefix = memberPrefix.Length == 0 ? "" : memberPrefix + ".";
        string namePrefix = memberPrefix.Length == 0 ? "" : char.ToLowerInvariant(memberPrefix[0]) + memberPrefix.Substring(1) + ".";
        var parameters = new List<int>
        {
            Parameter(owner, path, namePrefix + "weight", prefix + "Weight", new[] { outFeatures, inFeatures }, ParameterInit.Normal),
        };
        if (bias) parameters.Add(Parameter(owner, path, namePrefix + "bias", prefix + "Bias", new[] { outFeatures }, ParameterInit.Zeros));
        int output = NewValue(ValueKind.Real, WithLast(input.Shape, outFeatures), Join(layer, "out"));
        Emit(OpKind.Linear, layer, new[] { x }, new[] { output }, parameters.ToArray(), new[] { inFeatures, outFeatures });
        return output;
    }

    public int LayerNorm(LayerNode node, EquatableArray<LayerAccess> path, int x, LocationInfo? location)
    {
        int dim = node.Dims[0];
        var input = RequireFeatures(x, dim, node.Path, location);
        int gamma = Parameter(node, path, "weight", "Weight", new[] { dim }, ParameterInit.Ones);
        int beta = Parameter(node, path, "bias", "Bias", new[] { dim }, ParameterInit.Zeros);
        var rows = input.Shape.Take(input.Shape.Count - 1).ToArray();
        int output = NewValue(ValueKind.Real, input.Shape, Join(node.Path, "out"));
        int mean = NewValue(ValueKind.Real, rows, Join(node.Path, "mean"), fp32Statistics: true);
        int rstd = NewValue(ValueKind.Real, rows, Join(node.Path, "rstd"), fp32Statistics: true);
        Emit(OpKind.LayerNorm, node.Path, new[] { x }, new[] { output, mean, rstd }, new[] { gamma, beta }, new[] { dim });
        return output;
    }

    /// <summary>Causal self-attention lowers to three ops: the qkv projection, the attention core, the output projection.</summary>
    public int Attention(LayerNode node, EquatableArray<LayerAccess> path, int x, LocationInfo? location)
    {
        int dim = node.Dims[0], heads = node.Dims[1];
        var input = RequireFeatures(x, dim, node.Path, location);
        if (input.Shape.Count != 2)
            throw Mismatch(node.Path, $"[batch, sequence, {dim}]", Describe(input), location);
        if (dim % heads != 0)
            throw Mismatch(node.Path, $"a dimension divisible by {heads} heads", dim.ToString(System.Globalization.CultureInfo.InvariantCulture), location);

        int sequence = input.Shape[0];
        int qkv = Linear(node.Path + ".qkv", dim, 3 * dim, node.Bias, node, path, "Qkv", x, location);
        int output = NewValue(ValueKind.Real, input.Shape, Join(node.Path, "core"));
        // Backward forms the probabilities again from each query row's log-sum-exp, so only [heads, sequence] is kept.
        int logSumExp = NewValue(ValueKind.Real, new[] { heads, sequence }, Join(node.Path, "lse"), fp32Statistics: true);
        Emit(OpKind.Attention, node.Path, new[] { qkv }, new[] { output, logSumExp }, new int[0], new[] { sequence, heads, dim });
        return Linear(node.Path + ".projection", dim, dim, node.Bias, node, path, "Projection", output, location);
    }

    /// <summary>
    /// Random-LTD's gather before a <c>[TokenDrop]</c> element: the kept indices and the kept rows of
    /// <paramref name="x"/>, the input the element's forward sees.
    /// </summary>
    public (int Kept, int Gathered) GatherTokens(int x, int element, string layer, LocationInfo? location)
    {
        var input = RequireKind(x, ValueKind.Real, layer + " ([TokenDrop])", location);
        if (input.Shape.Count != 2)
            throw Mismatch(layer + " ([TokenDrop])", "an input [batch, sequence, width]", Describe(input), location);
        int sequence = input.Shape[0], width = input.Shape[1];
        int kept = NewValue(ValueKind.Tokens, new[] { sequence }, Join(layer, "kept"));
        Emit(OpKind.TokenIndices, layer, new int[0], new[] { kept }, new int[0], new[] { sequence, element });
        int gathered = NewValue(ValueKind.Real, input.Shape, Join(layer, "tokens"));
        Emit(OpKind.TokenGather, layer, new[] { x, kept }, new[] { gathered }, new int[0], new[] { sequence, width, element });
        return (kept, gathered);
    }

    /// <summary>Random-LTD's scatter after a <c>[TokenDrop]</c> element: its output on the kept tokens, its input elsewhere.</summary>
    public int ScatterTokens(int x, int layerOutput, int kept, int element, string layer, LocationInfo? location)
    {
        var input = Values[x];
        var output = RequireKind(layerOutput, ValueKind.Real, layer + " ([TokenDrop])", location);
        if (!output.Shape.Equals(input.Shape))
            throw Mismatch(layer + " ([TokenDrop]) output", Describe(input), Describe(output), location);
        int result = NewValue(ValueKind.Real, input.Shape, Join(layer, "out"));
        Emit(OpKind.TokenScatter, layer, new[] { x, layerOutput, kept }, new[] { result }, new int[0], new[] { input.Shape[0], input.Shape[1], element });
        return result;
    }

    public int Gelu(int x, string layer, LocationInfo? location)
    {
        var input = RequireKind(x, ValueKind.Real, "Activations.Gelu", location);
        int output = NewValue(ValueKind.Real, input.Shape, Join(layer, "gelu" + Ops.Count.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Emit(OpKind.Gelu, layer, new[] { x }, new[] { output }, new int[0], new int[0]);
        return output;
    }

    public int Add(int a, int b, string layer, LocationInfo? location)
    {
        var left = RequireKind(a, ValueKind.Real, "+", location);
        var right = RequireKind(b, ValueKind.Real, "+", location);
        if (!left.Shape.Equals(right.Shape))
            throw Mismatch((layer.Length == 0 ? "" : layer + ": ") + "+", Describe(left), Describe(right), location);
        int output = NewValue(ValueKind.Real, left.Shape, Join(layer, "sum" + Ops.Count.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Emit(OpKind.Add, layer, new[] { a, b }, new[] { output }, new int[0], new int[0]);
        return output;
    }

    public int CrossEntropy(int logits, int targets, string layer, LocationInfo? location)
    {
        var scores = RequireKind(logits, ValueKind.Real, "Loss.CrossEntropy logits", location);
        var labels = RequireKind(targets, ValueKind.Tokens, "Loss.CrossEntropy targets", location);
        var rows = scores.Shape.Take(scores.Shape.Count - 1).ToEquatableArray();
        if (scores.Shape.Count < 2 || !rows.Equals(labels.Shape))
            throw Mismatch("Loss.CrossEntropy targets", $"tokens {Format(rows)}", Describe(labels), location);
        int output = NewValue(ValueKind.Real, new int[0], Join(layer, "loss"));
        Emit(OpKind.CrossEntropy, layer, new[] { logits, targets }, new[] { output }, new int[0], new[] { scores.Shape[scores.Shape.Count - 1] });
        return output;
    }

    private int Parameter(LayerNode owner, EquatableArray<LayerAccess> path, string suffix, string member, int[] shape, ParameterInit init)
    {
        string name = Join(owner.Path, suffix);
        if (_parameterIds.TryGetValue(name, out int existing)) return existing;
        int id = Parameters.Count;
        Parameters.Add(new IrParameter(id, name, shape.ToEquatableArray(), init, path, member));
        _parameterIds[name] = id;
        return id;
    }

    private void Emit(OpKind kind, string layer, int[] inputs, int[] outputs, int[] parameters, int[] dims)
        => Ops.Add(new IrOp(kind, layer, inputs.ToEquatableArray(), outputs.ToEquatableArray(), parameters.ToEquatableArray(), dims.ToEquatableArray()));

    private IrValue RequireKind(int id, ValueKind kind, string where, LocationInfo? location)
    {
        var value = Values[id];
        if (value.Kind != kind)
            throw Mismatch(where, kind == ValueKind.Tokens ? "token indices" : "a real-valued tensor", Describe(value), location);
        return value;
    }

    private IrValue RequireFeatures(int id, int features, string where, LocationInfo? location)
    {
        var value = RequireKind(id, ValueKind.Real, where, location);
        if (value.Shape.Count == 0 || value.Shape[value.Shape.Count - 1] != features)
            throw Mismatch(where, $"[batch, ..., {features}]", Describe(value), location);
        return value;
    }

    private static TraceException Mismatch(string where, string expected, string actual, LocationInfo? location)
        => Tracer.Error(DiagnosticDescriptors.ShapeMismatch, location, where, expected, actual);

    private static IEnumerable<int> WithLast(EquatableArray<int> shape, int last) => shape.Take(shape.Count - 1).Concat(new[] { last });

    private static string Describe(IrValue value) => (value.Kind == ValueKind.Tokens ? "tokens " : "") + Format(value.Shape);

    public static string Format(IEnumerable<int> shape)
        => "[" + string.Join(", ", new[] { "batch" }.Concat(shape.Select(d => d.ToString(System.Globalization.CultureInfo.InvariantCulture)))) + "]";

    private static string Join(string layer, string role) => layer.Length == 0 ? role : layer + "." + role;
}
