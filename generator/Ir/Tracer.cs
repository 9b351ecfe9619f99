using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Model;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator.Ir;

/// <summary>The trace stage's result: the graph (null when the model has a shape error) and the diagnostics found.</summary>
internal sealed record TraceResult(IrGraph? Graph, EquatableArray<DiagnosticInfo> Diagnostics);

/// <summary>
/// Runs the model's [Forward] body symbolically: user layer forwards are inlined, layer arrays unrolled, built-in
/// layers lowered to ops (<see cref="OpBuilder"/>), and every shape checked. The result is straight-line code.
/// </summary>
internal sealed class Tracer
{
    private readonly Dictionary<string, ForwardMethod> _forwards = new();
    private readonly OpBuilder _builder = new();
    private readonly List<string> _tokenDropLayers;
    private bool _insideTokenDrop;

    private Tracer(ModelSpec model)
    {
        foreach (var forward in model.LayerForwards) _forwards[forward.TypeName] = forward;
        _tokenDropLayers = Planning.LayerPaths.Outermost(model.Root, node => node.TokenDrop).Select(node => node.Path).ToList();
    }

    public static TraceResult Trace(ModelSpec model)
    {
        var tracer = new Tracer(model);
        try
        {
            var graph = tracer.TraceModel(model);
            return new TraceResult(graph, EquatableArray<DiagnosticInfo>.Empty);
        }
        catch (TraceException error)
        {
            return new TraceResult(null, EquatableArray.Of(error.Diagnostic));
        }
    }

    private IrGraph TraceModel(ModelSpec model)
    {
        var scope = new Scope(model.Root, EquatableArray<LayerAccess>.Empty, model.ClassName);
        var inputs = new List<IrInput>();
        foreach (var input in model.Forward.Inputs)
        {
            int id = _builder.NewValue(input.IsTokens ? ValueKind.Tokens : ValueKind.Real, input.Dims, input.Name);
            scope.Locals[input.Name] = new TensorBinding(id);
            inputs.Add(new IrInput(input.Name, id));
        }

        var output = Run(model.Forward, scope)
            ?? throw Error(DiagnosticDescriptors.InvalidForwardMethod, model.Forward.Location, model.ClassName, "has a [Forward] method that does not end with 'return'");
        bool isLoss = _builder.Ops.Count > 0 && _builder.Ops[_builder.Ops.Count - 1].Kind == OpKind.CrossEntropy
                      && _builder.Ops[_builder.Ops.Count - 1].Outputs[0] == output;
        if (_builder.Values[output].Kind != ValueKind.Real)
            throw Error(DiagnosticDescriptors.InvalidForwardMethod, model.Forward.Location, model.ClassName, "must return a real-valued tensor (a loss or activations), not tokens");

        return new IrGraph(_builder.Values.ToEquatableArray(), _builder.Ops.ToEquatableArray(), _builder.Parameters.ToEquatableArray(),
            inputs.ToEquatableArray(), output, isLoss);
    }

    /// <summary>Executes a forward body in <paramref name="scope"/>; returns the returned value's id.</summary>
    private int? Run(ForwardMethod method, Scope scope)
    {
        foreach (var statement in method.Body)
        {
            var returned = Execute(statement, scope);
            if (returned is not null) return returned;
        }
        return null;
    }

    private int? Execute(ForwardStatement statement, Scope scope)
    {
        switch (statement)
        {
            case AssignStatement assign:
                scope.Locals[assign.Variable] = Evaluate(assign.Value, scope);
                return null;

            case ReturnStatement ret:
                return ExpectTensor(Evaluate(ret.Value, scope), ret.Value);

            case ForEachStatement loop:
            {
                if (Evaluate(loop.Collection, scope) is not LayerBinding { Node.Kind: LayerKind.Array } array)
                    throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, loop.Location, "foreach", scope.Owner, "'foreach' must iterate over a [Layer] array");
                foreach (var element in array.Node.Children)
                {
                    scope.Locals[loop.Variable] = new LayerBinding(element, Append(array.Path, element.Access));
                    foreach (var inner in loop.Body)
                    {
                        var returned = Execute(inner, scope);
                        if (returned is not null) return returned;
                    }
                }
                return null;
            }

            default:
                throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, statement.Location, statement.GetType().Name, scope.Owner, "statement kind");
        }
    }

    private Binding Evaluate(ForwardExpression expression, Scope scope)
    {
        switch (expression)
        {
            case NameExpression name:
                return scope.Locals.TryGetValue(name.Name, out var bound)
                    ? bound
                    : throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, name.Location, name.Name, scope.Owner, "the name has no value here");

            case FieldExpression field:
            {
                var node = scope.Self.Child(field.Field)
                    ?? throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, field.Location, field.Field, scope.Owner, "only [Layer] fields can be used in [Forward]");
                return new LayerBinding(node, Append(scope.Path, node.Access));
            }

            case ElementExpression element:
            {
                if (Evaluate(element.Collection, scope) is not LayerBinding { Node.Kind: LayerKind.Array } array
                    || element.Index < 0 || element.Index >= array.Node.Children.Count)
                    throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, element.Location, $"[{element.Index}]", scope.Owner, "index outside the layer array");
                var node = array.Node.Children[element.Index];
                return new LayerBinding(node, Append(array.Path, node.Access));
            }

            case AddExpression add:
            {
                int left = ExpectTensor(Evaluate(add.Left, scope), add.Left);
                int right = ExpectTensor(Evaluate(add.Right, scope), add.Right);
                return new TensorBinding(_builder.Add(left, right, scope.Self.Path, add.Location));
            }

            case StaticCallExpression call:
                return new TensorBinding(EvaluateStaticCall(call, scope));

            case MethodCallExpression call:
                return new TensorBinding(EvaluateMethodCall(call, scope));

            default:
                throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, expression.Location, expression.GetType().Name, scope.Owner, "expression kind");
        }
    }

    private int EvaluateStaticCall(StaticCallExpression call, Scope scope)
    {
        var args = call.Arguments.Select(a => ExpectTensor(Evaluate(a, scope), a)).ToArray();
        switch (call.Type, call.Method, args.Length)
        {
            case (KnownNames.Activations, "Gelu", 1):
                return _builder.Gelu(args[0], scope.Self.Path, call.Location);
            case (KnownNames.Loss, "CrossEntropy", 2):
                return _builder.CrossEntropy(args[0], args[1], scope.Self.Path, call.Location);
            default:
                throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, call.Location, $"{call.Type}.{call.Method}", scope.Owner,
                    "the compiled functions are Activations.Gelu(x) and Loss.CrossEntropy(logits, targets)");
        }
    }

    private int EvaluateMethodCall(MethodCallExpression call, Scope scope)
    {
        var receiver = Evaluate(call.Receiver, scope);
        var args = call.Arguments.Select(a => Evaluate(a, scope)).ToArray();

        if (receiver is TensorBinding tensor)
        {
            if (call.Method == "Positions" && args.Length == 0)
                return _builder.Positions(tensor.Value, scope.Self.Path, call.Location);
            throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, call.Location, call.Method, scope.Owner, "the compiled tensor method is Positions()");
        }

        var layer = (LayerBinding)receiver;
        var node = layer.Node;
        var tensors = args.Select((a, i) => ExpectTensor(a, call.Arguments[i])).ToArray();
        switch (node.Kind, call.Method, tensors.Length)
        {
            case (LayerKind.Embedding, "Forward", 1):
                return _builder.Embedding(node, layer.Path, tensors[0], call.Location);
            case (LayerKind.Embedding, "Unembed", 1):
                return _builder.Unembed(node, layer.Path, tensors[0], call.Location);
            case (LayerKind.Linear, "Forward", 1):
                return _builder.Linear(node, layer.Path, tensors[0], call.Location);
            case (LayerKind.LayerNorm, "Forward", 1):
                return _builder.LayerNorm(node, layer.Path, tensors[0], call.Location);
            case (LayerKind.CausalSelfAttention, "Forward", 1):
                return _builder.Attention(node, layer.Path, tensors[0], call.Location);
            case (LayerKind.User, "Forward", _):
                return InlineUserLayer(layer, tensors, call);
            default:
                throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, call.Location, call.Method, scope.Owner,
                    $"'{node.Path}' ({node.Kind}) has no compiled method '{call.Method}' taking {tensors.Length} tensor(s)");
        }
    }

    private int InlineUserLayer(LayerBinding layer, int[] arguments, MethodCallExpression call)
    {
        var forward = _forwards[layer.Node.TypeName];
        if (forward.Inputs.Count != arguments.Length)
            throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, call.Location, call.Method, layer.Node.Path, $"expects {forward.Inputs.Count} argument(s)");

        int element = _insideTokenDrop ? -1 : _tokenDropLayers.IndexOf(layer.Node.Path);
        if (element >= 0) return InlineTokenDropLayer(layer, forward, arguments, element, call);

        var scope = new Scope(layer.Node, layer.Path, ShortName(layer.Node.TypeName));
        for (int i = 0; i < arguments.Length; i++) scope.Locals[forward.Inputs[i].Name] = new TensorBinding(arguments[i]);
        return Run(forward, scope)
            ?? throw Error(DiagnosticDescriptors.InvalidForwardMethod, forward.Location, scope.Owner, "has a [Forward] method that does not end with 'return'");
    }

    /// <summary>
    /// A <c>[TokenDrop]</c> element between random-LTD's gather and scatter: its forward sees the kept tokens' rows
    /// (every token when none are dropped) and the tokens it skips keep their input.
    /// </summary>
    private int InlineTokenDropLayer(LayerBinding layer, ForwardMethod forward, int[] arguments, int element, MethodCallExpression call)
    {
        string path = layer.Node.Path;
        if (arguments.Length != 1)
            throw Error(DiagnosticDescriptors.ShapeMismatch, call.Location, path + " ([TokenDrop])", "one input [batch, sequence, width]", arguments.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + " inputs");
        var (kept, gathered) = _builder.GatherTokens(arguments[0], element, path, call.Location);
        _insideTokenDrop = true;
        try
        {
            int output = InlineUserLayer(layer, new[] { gathered }, call);
            return _builder.ScatterTokens(arguments[0], output, kept, element, path, call.Location);
        }
        finally
        {
            _insideTokenDrop = false;
        }
    }

    private int ExpectTensor(Binding binding, ForwardExpression expression) => binding switch
    {
        TensorBinding tensor => tensor.Value,
        LayerBinding layer => throw Error(DiagnosticDescriptors.UnsupportedForwardSyntax, expression.Location, layer.Node.Path, "[Forward]", "a layer is used where a tensor is expected"),
        _ => throw new System.InvalidOperationException(),
    };

    private static EquatableArray<LayerAccess> Append(EquatableArray<LayerAccess> path, LayerAccess step)
        => path.Concat(new[] { step }).ToEquatableArray();

    private static string ShortName(string typeName) => typeName.Substring(typeName.LastIndexOf('.') + 1);

    internal static TraceException Error(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, LocationInfo? location, params string[] arguments)
        => new(DiagnosticInfo.Create(descriptor, location, arguments));

    private abstract record Binding;

    private sealed record TensorBinding(int Value) : Binding;

    private sealed record LayerBinding(LayerNode Node, EquatableArray<LayerAccess> Path) : Binding;

    private sealed class Scope
    {
        public Scope(LayerNode self, EquatableArray<LayerAccess> path, string owner)
        {
            Self = self;
            Path = path;
            Owner = owner;
        }

        public LayerNode Self { get; }

        public EquatableArray<LayerAccess> Path { get; }

        public string Owner { get; }

        public Dictionary<string, Binding> Locals { get; } = new();
    }
}

/// <summary>Carries a model error out of deep tracing; caught at the top so the generator never throws.</summary>
internal sealed class TraceException : System.Exception
{
    public TraceException(DiagnosticInfo diagnostic) => Diagnostic = diagnostic;

    public DiagnosticInfo Diagnostic { get; }
}
