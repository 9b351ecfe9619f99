using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Shardwise.Generator.Model;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator.Parsing;

/// <summary>
/// Builds the concrete layer tree of a model by evaluating, at build time, how each [Layer] field is constructed:
/// <c>new T(args)</c> (in a field initializer, a constructor body, or with primary-constructor parameters) and
/// <c>Layers.Repeat(n, () => new T(args))</c>. User layer constructors are followed with their arguments bound.
/// </summary>
internal sealed class LayerTreeParser
{
    private static readonly SymbolDisplayFormat FullName = SymbolDisplayFormat.FullyQualifiedFormat;
    private static readonly Dictionary<string, object> NoEnvironment = new();

    private readonly ParseContext _context;
    private readonly ForwardParser _forwardParser;

    public LayerTreeParser(ParseContext context, ForwardParser forwardParser)
    {
        _context = context;
        _forwardParser = forwardParser;
    }

    public LayerNode ParseModel(INamedTypeSymbol model)
    {
        var constructor = model.InstanceConstructors.FirstOrDefault(c => c.Parameters.Length == 0);
        var children = ParseFields(model, "", constructor, NoEnvironment);
        var access = new LayerAccess("", "", model.ToDisplayString(FullName), -1);
        return new LayerNode("", "", LayerKind.User, model.ToDisplayString(FullName), EquatableArray<int>.Empty, false,
            children.ToEquatableArray(), access, LocationInfo.From(model.Locations.FirstOrDefault()));
    }

    private List<LayerNode> ParseFields(INamedTypeSymbol type, string prefix, IMethodSymbol? constructor, IReadOnlyDictionary<string, object> environment)
    {
        var nodes = new List<LayerNode>();
        foreach (var member in type.GetMembers())
        {
            _context.CancellationToken.ThrowIfCancellationRequested();
            if (member is not IFieldSymbol field || !Symbols.HasAttribute(field, KnownNames.LayerAttribute)) continue;

            var path = prefix.Length == 0 ? field.Name : prefix + "." + field.Name;
            var location = LocationInfo.From(field.Locations.FirstOrDefault());
            if (!IsLayerType(field.Type))
            {
                _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.UnknownLayerType, location,
                    field.Name, field.Type.ToDisplayString()));
                continue;
            }

            var initializer = FindInitializer(field, constructor);
            if (initializer is null)
            {
                _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedLayerConstruction, location,
                    field.Name, ElementType(field.Type).Name, "no initializer or constructor assignment was found"));
                continue;
            }

            var access = new LayerAccess(type.ToDisplayString(FullName), field.Name, field.Type.ToDisplayString(FullName), -1);
            var node = ParseLayerExpression(initializer, field, path, access, environment);
            if (node is not null) nodes.Add(WithFieldTraits(node, field));
        }
        return nodes;
    }

    /// <summary>[Shard], [Checkpoint], [LayerDrop] and [TokenDrop] on a field apply to its layer, or to every element of a layer array.</summary>
    private static LayerNode WithFieldTraits(LayerNode node, IFieldSymbol field)
    {
        var shardAttribute = Symbols.FindAttribute(field, KnownNames.ShardAttribute);
        var shard = shardAttribute is { ConstructorArguments.Length: 1 } && shardAttribute.ConstructorArguments[0].Value is int kind
            ? (TensorShard)(kind + 1)
            : TensorShard.None;
        var checkpointAttribute = Symbols.FindAttribute(field, KnownNames.CheckpointAttribute);
        bool checkpoint = checkpointAttribute is not null;
        bool inputsOnHost = checkpointAttribute?.NamedArguments.Any(a => a.Key == "InputsOnHost" && a.Value.Value is true) == true;
        bool partitionInputs = checkpointAttribute?.NamedArguments.Any(a => a.Key == "PartitionInputs" && a.Value.Value is true) == true;
        var layerDropAttribute = Symbols.FindAttribute(field, KnownNames.LayerDropAttribute);
        var tokenDropAttribute = Symbols.FindAttribute(field, KnownNames.TokenDropAttribute);
        if (shard == TensorShard.None && !checkpoint && layerDropAttribute is null && tokenDropAttribute is null) return node;

        var location = LocationInfo.From(shardAttribute?.ApplicationSyntaxReference?.GetSyntax());
        var checkpointLocation = LocationInfo.From(checkpointAttribute?.ApplicationSyntaxReference?.GetSyntax());
        var layerDropLocation = LocationInfo.From(layerDropAttribute?.ApplicationSyntaxReference?.GetSyntax());
        var tokenDropLocation = LocationInfo.From(tokenDropAttribute?.ApplicationSyntaxReference?.GetSyntax());
        LayerNode Apply(LayerNode n) => n with
        {
            Shard = shard, ShardLocation = location, Checkpoint = checkpoint, CheckpointInputsOnHost = inputsOnHost,
            CheckpointPartitionInputs = partitionInputs, CheckpointLocation = checkpointLocation,
            LayerDrop = layerDropAttribute is not null, LayerDropLocation = layerDropLocation,
            TokenDrop = tokenDropAttribute is not null, TokenDropLocation = tokenDropLocation,
        };
        if (node.Kind != LayerKind.Array) return Apply(node);
        return Apply(node with { Children = node.Children.Select(Apply).ToEquatableArray() });
    }

    private LayerNode? ParseLayerExpression(ExpressionSyntax expression, IFieldSymbol field, string path, LayerAccess access, IReadOnlyDictionary<string, object> environment)
    {
        var semanticModel = _context.SemanticModelFor(expression);
        switch (expression)
        {
            case BaseObjectCreationExpressionSyntax creation:
                return ParseCreation(creation, field, path, access, environment);

            case InvocationExpressionSyntax invocation
                when semanticModel.GetSymbolInfo(invocation, _context.CancellationToken).Symbol is IMethodSymbol { Name: "Repeat" } repeat
                     && repeat.ContainingType.ToDisplayString() == KnownNames.Layers:
                return ParseRepeat(invocation, field, path, access, environment);

            default:
                _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedLayerConstruction, LocationInfo.From(expression),
                    field.Name, ElementType(field.Type).Name, $"'{expression}' is not a constructor call"));
                return null;
        }
    }

    private LayerNode? ParseRepeat(InvocationExpressionSyntax invocation, IFieldSymbol field, string path, LayerAccess access, IReadOnlyDictionary<string, object> environment)
    {
        var arguments = invocation.ArgumentList.Arguments;
        if (arguments.Count != 2
            || arguments[1].Expression is not LambdaExpressionSyntax { ExpressionBody: { } body })
        {
            _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedLayerConstruction, LocationInfo.From(invocation),
                field.Name, ElementType(field.Type).Name, "Layers.Repeat needs a count and a lambda '() => new T(...)'"));
            return null;
        }

        if (!ConstantEvaluator.TryEvaluate(arguments[0].Expression, _context, environment, out var countValue, out var reason)
            || countValue is not int count || count <= 0)
        {
            _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.NonConstantDimension, LocationInfo.From(arguments[0]),
                "count", path, reason.Length > 0 ? reason : $"the value is {countValue ?? "unknown"}, a positive int is needed"));
            return null;
        }

        var elements = new List<LayerNode>();
        var elementType = ElementType(field.Type).ToDisplayString(FullName);
        for (int i = 0; i < count; i++)
        {
            var elementAccess = new LayerAccess("", "", elementType, i);
            var element = ParseLayerExpression(body, field, path + "." + i.ToString(System.Globalization.CultureInfo.InvariantCulture), elementAccess, environment);
            if (element is null) return null;
            elements.Add(element with { Field = i.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }

        return new LayerNode(path, field.Name, LayerKind.Array, field.Type.ToDisplayString(FullName), EquatableArray.Of(count), false,
            elements.ToEquatableArray(), access, LocationInfo.From(field.Locations.FirstOrDefault()));
    }

    private LayerNode? ParseCreation(BaseObjectCreationExpressionSyntax creation, IFieldSymbol field, string path, LayerAccess access, IReadOnlyDictionary<string, object> environment)
    {
        var semanticModel = _context.SemanticModelFor(creation);
        if (semanticModel.GetSymbolInfo(creation, _context.CancellationToken).Symbol is not IMethodSymbol constructor)
        {
            _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedLayerConstruction, LocationInfo.From(creation),
                field.Name, ElementType(field.Type).Name, "the constructor call does not bind"));
            return null;
        }

        var type = constructor.ContainingType;
        var bound = BindArguments(creation, constructor, path, environment);
        if (bound is null) return null;

        var location = LocationInfo.From(creation);
        var fieldName = access.ElementIndex >= 0 ? access.ElementIndex.ToString(System.Globalization.CultureInfo.InvariantCulture) : field.Name;

        if (BuiltinLayers.TryGetKind(type.ToDisplayString(), out var kind))
        {
            var dims = new List<int>();
            foreach (var name in BuiltinLayers.DimensionParameters(kind))
            {
                if (bound.TryGetValue(name, out var value) && value is int dim && dim > 0)
                {
                    dims.Add(dim);
                    continue;
                }
                _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.NonConstantDimension, location,
                    name, path, $"the value is {value ?? "unknown"}, a positive int is needed"));
                return null;
            }

            var biasParameter = BuiltinLayers.BiasParameter(kind);
            bool bias = biasParameter is not null && (!bound.TryGetValue(biasParameter, out var b) || b is true);
            return new LayerNode(path, fieldName, kind, type.ToDisplayString(FullName), dims.ToEquatableArray(), bias,
                EquatableArray<LayerNode>.Empty, access, location);
        }

        if (!Symbols.HasAttribute(type, KnownNames.LayerAttribute))
        {
            _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.UnknownLayerType, location, field.Name, type.ToDisplayString()));
            return null;
        }

        _forwardParser.EnsureLayerForward(type);
        var children = ParseFields(type, path, constructor, bound);
        return new LayerNode(path, fieldName, LayerKind.User, type.ToDisplayString(FullName), EquatableArray<int>.Empty, false,
            children.ToEquatableArray(), access, location);
    }

    /// <summary>Binds each constructor parameter to a constant, by name or position, falling back to its default.</summary>
    private Dictionary<string, object>? BindArguments(BaseObjectCreationExpressionSyntax creation, IMethodSymbol constructor, string path, IReadOnlyDictionary<string, object> environment)
    {
        var bound = new Dictionary<string, object>();
        var arguments = creation.ArgumentList?.Arguments ?? default;
        for (int i = 0; i < arguments.Count; i++)
        {
            var argument = arguments[i];
            var parameter = argument.NameColon is { } nameColon
                ? constructor.Parameters.FirstOrDefault(p => p.Name == nameColon.Name.Identifier.ValueText)
                : i < constructor.Parameters.Length ? constructor.Parameters[i] : null;
            if (parameter is null) continue;

            if (!ConstantEvaluator.TryEvaluate(argument.Expression, _context, environment, out var value, out var reason) || value is null)
            {
                _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.NonConstantDimension, LocationInfo.From(argument),
                    parameter.Name, path, reason));
                return null;
            }
            bound[parameter.Name] = value;
        }

        foreach (var parameter in constructor.Parameters)
        {
            if (!bound.ContainsKey(parameter.Name) && parameter.HasExplicitDefaultValue && parameter.ExplicitDefaultValue is not null)
                bound[parameter.Name] = parameter.ExplicitDefaultValue;
        }
        return bound;
    }

    /// <summary>The expression a field is given: its initializer, or an assignment in the invoked constructor.</summary>
    private ExpressionSyntax? FindInitializer(IFieldSymbol field, IMethodSymbol? constructor)
    {
        foreach (var reference in field.DeclaringSyntaxReferences)
        {
            if (reference.GetSyntax(_context.CancellationToken) is VariableDeclaratorSyntax { Initializer: { } initializer })
                return initializer.Value;
        }

        if (constructor is null) return null;
        foreach (var reference in constructor.DeclaringSyntaxReferences)
        {
            if (reference.GetSyntax(_context.CancellationToken) is not ConstructorDeclarationSyntax declaration) continue;
            var statements = declaration.Body?.Statements ?? default;
            foreach (var statement in statements)
            {
                if (statement is ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment }
                    && assignment.IsKind(SyntaxKind.SimpleAssignmentExpression)
                    && AssignedName(assignment.Left) == field.Name)
                {
                    return assignment.Right;
                }
            }
        }
        return null;
    }

    private static string? AssignedName(ExpressionSyntax left) => left switch
    {
        IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
        MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax, Name: var name } => name.Identifier.ValueText,
        _ => null,
    };

    private static bool IsLayerType(ITypeSymbol type)
    {
        var element = ElementType(type);
        return BuiltinLayers.TryGetKind(element.ToDisplayString(), out _) || Symbols.HasAttribute(element, KnownNames.LayerAttribute);
    }

    private static ITypeSymbol ElementType(ITypeSymbol type) => type is IArrayTypeSymbol array ? array.ElementType : type;
}
