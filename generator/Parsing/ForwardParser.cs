using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Shardwise.Generator.Model;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator.Parsing;

/// <summary>
/// Translates a [Forward] method body into the value-equatable <see cref="ForwardStatement"/> subset.
/// Anything outside the subset is reported (SW0002) at its own location rather than silently skipped.
/// </summary>
internal sealed class ForwardParser
{
    private const string SupportedExpressions = "only layer calls, tensor '+', Activations.*, Loss.* and tensor.Positions() are compiled";

    private readonly ParseContext _context;

    public ForwardParser(ParseContext context) => _context = context;

    /// <summary>Parses the model's own forward, whose inputs must declare their per-sample shapes.</summary>
    public ForwardMethod? ParseModelForward(INamedTypeSymbol model) => Parse(model, requireInputShapes: true);

    /// <summary>Parses a user layer's forward once, however many instances of the layer exist.</summary>
    public void EnsureLayerForward(INamedTypeSymbol layerType)
    {
        var name = layerType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
        if (!_context.ParsedLayerTypes.Add(name)) return;
        var forward = Parse(layerType, requireInputShapes: false);
        if (forward is not null) _context.LayerForwards.Add(forward);
    }

    private ForwardMethod? Parse(INamedTypeSymbol type, bool requireInputShapes)
    {
        var typeName = type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
        var candidates = type.GetMembers().OfType<IMethodSymbol>()
            .Where(m => Symbols.HasAttribute(m, KnownNames.ForwardAttribute)).ToList();
        var typeLocation = LocationInfo.From(type.Locations.FirstOrDefault());
        if (candidates.Count != 1)
        {
            _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidForwardMethod, typeLocation, type.Name,
                candidates.Count == 0 ? "has no [Forward] method" : "has more than one [Forward] method"));
            return null;
        }

        var method = candidates[0];
        var methodLocation = LocationInfo.From(method.Locations.FirstOrDefault());
        if (method.ReturnType.ToDisplayString() != KnownNames.Tensor || method.IsStatic)
        {
            _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidForwardMethod, methodLocation, type.Name,
                "has a [Forward] method that is not an instance method returning Tensor"));
            return null;
        }

        var inputs = new List<ForwardInput>();
        foreach (var parameter in method.Parameters)
        {
            var location = LocationInfo.From(parameter.Locations.FirstOrDefault());
            if (parameter.Type.ToDisplayString() != KnownNames.Tensor)
            {
                _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidForwardMethod, location, type.Name,
                    $"has a [Forward] parameter '{parameter.Name}' that is not a Tensor"));
                return null;
            }
            var tokens = Symbols.FindAttribute(parameter, KnownNames.TokensAttribute);
            var shape = Symbols.FindAttribute(parameter, KnownNames.ShapeAttribute);
            var dims = ReadDims(tokens ?? shape);
            if (requireInputShapes && dims is null)
            {
                _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.MissingInputShape, location, parameter.Name, type.Name));
                return null;
            }
            inputs.Add(new ForwardInput(parameter.Name, tokens is not null, (dims ?? new List<int>()).ToEquatableArray(), location));
        }

        var declaration = method.DeclaringSyntaxReferences
            .Select(r => r.GetSyntax(_context.CancellationToken)).OfType<MethodDeclarationSyntax>().FirstOrDefault();
        if (declaration is null) return null;

        var body = new List<ForwardStatement>();
        bool ok = declaration.ExpressionBody is { } arrow
            ? TryAddReturn(arrow.Expression, type.Name, body)
            : TryParseStatements(declaration.Body?.Statements ?? default, type.Name, body);
        return ok ? new ForwardMethod(typeName, inputs.ToEquatableArray(), body.ToEquatableArray(), methodLocation) : null;
    }

    private static List<int>? ReadDims(AttributeData? attribute)
    {
        if (attribute is null || attribute.ConstructorArguments.Length != 1) return null;
        var values = attribute.ConstructorArguments[0].Values;
        if (values.IsDefaultOrEmpty) return null;
        var dims = new List<int>();
        foreach (var value in values)
        {
            if (value.Value is not int dim || dim <= 0) return null;
            dims.Add(dim);
        }
        return dims;
    }

    private bool TryAddReturn(ExpressionSyntax expression, string owner, List<ForwardStatement> body)
    {
        var value = ParseExpression(expression, owner);
        if (value is null) return false;
        body.Add(new ReturnStatement(value, LocationInfo.From(expression)));
        return true;
    }

    private bool TryParseStatements(SyntaxList<StatementSyntax> statements, string owner, List<ForwardStatement> body)
    {
        foreach (var statement in statements)
        {
            _context.CancellationToken.ThrowIfCancellationRequested();
            var parsed = ParseStatement(statement, owner);
            if (parsed is null) return false;
            body.Add(parsed);
        }
        return true;
    }

    private ForwardStatement? ParseStatement(StatementSyntax statement, string owner)
    {
        var location = LocationInfo.From(statement);
        switch (statement)
        {
            case LocalDeclarationStatementSyntax { Declaration.Variables: { Count: 1 } variables }
                when variables[0].Initializer is { } initializer:
            {
                var value = ParseExpression(initializer.Value, owner);
                return value is null ? null : new AssignStatement(variables[0].Identifier.ValueText, value, location);
            }

            case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment }
                when assignment.IsKind(SyntaxKind.SimpleAssignmentExpression) && assignment.Left is IdentifierNameSyntax target:
            {
                var value = ParseExpression(assignment.Right, owner);
                return value is null ? null : new AssignStatement(target.Identifier.ValueText, value, location);
            }

            case ForEachStatementSyntax loop:
            {
                var collection = ParseExpression(loop.Expression, owner);
                if (collection is null) return null;
                var body = new List<ForwardStatement>();
                bool ok = loop.Statement is BlockSyntax block
                    ? TryParseStatements(block.Statements, owner, body)
                    : ParseStatement(loop.Statement, owner) is { } single && Add(body, single);
                return ok ? new ForEachStatement(loop.Identifier.ValueText, collection, body.ToEquatableArray(), location) : null;
            }

            case ReturnStatementSyntax { Expression: { } returned }:
            {
                var value = ParseExpression(returned, owner);
                return value is null ? null : new ReturnStatement(value, location);
            }

            default:
                return Unsupported(statement, owner, "only 'var x = ...', 'x = ...', 'foreach' over a layer array and 'return' are compiled");
        }
    }

    private static bool Add(List<ForwardStatement> body, ForwardStatement statement)
    {
        body.Add(statement);
        return true;
    }

    private ForwardExpression? ParseExpression(ExpressionSyntax expression, string owner)
    {
        var location = LocationInfo.From(expression);
        var semanticModel = _context.SemanticModelFor(expression);
        switch (expression)
        {
            case ParenthesizedExpressionSyntax parenthesized:
                return ParseExpression(parenthesized.Expression, owner);

            case IdentifierNameSyntax identifier:
            {
                var symbol = semanticModel.GetSymbolInfo(identifier, _context.CancellationToken).Symbol;
                return symbol switch
                {
                    IFieldSymbol field => new FieldExpression(field.Name, location),
                    ILocalSymbol or IParameterSymbol => new NameExpression(identifier.Identifier.ValueText, location),
                    _ => Unsupported(expression, owner, "only locals, parameters and [Layer] fields can be named"),
                };
            }

            case MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } thisAccess:
                return new FieldExpression(thisAccess.Name.Identifier.ValueText, location);

            case ElementAccessExpressionSyntax element when element.ArgumentList.Arguments.Count == 1:
            {
                var collection = ParseExpression(element.Expression, owner);
                if (collection is null) return null;
                var index = semanticModel.GetConstantValue(element.ArgumentList.Arguments[0].Expression, _context.CancellationToken);
                return index.HasValue && index.Value is int i
                    ? new ElementExpression(collection, i, location)
                    : Unsupported(expression, owner, "an array index must be a constant");
            }

            case BinaryExpressionSyntax binary when binary.IsKind(SyntaxKind.AddExpression):
            {
                var left = ParseExpression(binary.Left, owner);
                var right = left is null ? null : ParseExpression(binary.Right, owner);
                return right is null ? null : new AddExpression(left!, right, location);
            }

            case InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax or BaseExpressionSyntax } }:
                // 'this.Helper(x)' is a call to an ordinary method: report the call, not the bare 'this'.
                return Unsupported(expression, owner, SupportedExpressions);

            case InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax member } invocation:
            {
                var arguments = new List<ForwardExpression>();
                foreach (var argument in invocation.ArgumentList.Arguments)
                {
                    var parsed = ParseExpression(argument.Expression, owner);
                    if (parsed is null) return null;
                    arguments.Add(parsed);
                }

                var receiverSymbol = semanticModel.GetSymbolInfo(member.Expression, _context.CancellationToken).Symbol;
                if (receiverSymbol is INamedTypeSymbol staticType)
                {
                    return new StaticCallExpression(staticType.ToDisplayString(), member.Name.Identifier.ValueText,
                        arguments.ToEquatableArray(), location);
                }

                var receiver = ParseExpression(member.Expression, owner);
                return receiver is null
                    ? null
                    : new MethodCallExpression(receiver, member.Name.Identifier.ValueText, arguments.ToEquatableArray(), location);
            }

            default:
                return Unsupported(expression, owner, SupportedExpressions);
        }
    }

    private T? Unsupported<T>(SyntaxNode node, string owner, string reason) where T : class
    {
        // One line of text: a multi-line statement (an 'if' with its block) would otherwise break the message.
        var text = string.Join(" ", node.ToString().Split(new[] { ' ', '\t', '\r', '\n' }, System.StringSplitOptions.RemoveEmptyEntries));
        if (text.Length > 60) text = text.Substring(0, 57) + "...";
        _context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedForwardSyntax, LocationInfo.From(node), text, owner, reason));
        return null;
    }

    private ForwardStatement? Unsupported(SyntaxNode node, string owner, string reason) => Unsupported<ForwardStatement>(node, owner, reason);

    private ForwardExpression? Unsupported(ExpressionSyntax node, string owner, string reason) => Unsupported<ForwardExpression>(node, owner, reason);
}
