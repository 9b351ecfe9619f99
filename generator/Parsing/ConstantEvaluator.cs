using System.Collections.Generic;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Shardwise.Generator.Parsing;

/// <summary>
/// Evaluates layer constructor arguments at build time: C# constants, plus the constructor parameters of the
/// enclosing user layer (bound in <c>environment</c>) combined with + − × ÷ %.
/// </summary>
internal static class ConstantEvaluator
{
    public static bool TryEvaluate(
        ExpressionSyntax expression,
        ParseContext context,
        IReadOnlyDictionary<string, object> environment,
        out object? value,
        out string reason)
    {
        reason = "";
        switch (expression)
        {
            case ParenthesizedExpressionSyntax parenthesized:
                return TryEvaluate(parenthesized.Expression, context, environment, out value, out reason);

            case IdentifierNameSyntax identifier when environment.TryGetValue(identifier.Identifier.ValueText, out var bound):
                value = bound;
                return true;

            case PrefixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.UnaryMinusExpression } negation:
                if (TryEvaluate(negation.Operand, context, environment, out var operand, out reason) && operand is int i)
                {
                    value = -i;
                    return true;
                }
                break;

            case BinaryExpressionSyntax binary:
                if (!TryEvaluate(binary.Left, context, environment, out var left, out reason)
                    || !TryEvaluate(binary.Right, context, environment, out var right, out reason))
                {
                    value = null;
                    return false;
                }
                if (left is int l && right is int r && TryApply(binary.Kind(), l, r, out int result))
                {
                    value = result;
                    return true;
                }
                value = null;
                reason = $"the operator '{binary.OperatorToken.Text}' is not evaluated at build time";
                return false;
        }

        var constant = context.SemanticModelFor(expression).GetConstantValue(expression, context.CancellationToken);
        if (constant.HasValue && constant.Value is not null)
        {
            value = constant.Value;
            return true;
        }

        value = null;
        if (reason.Length == 0) reason = $"'{expression}' is not a constant or a constructor parameter";
        return false;
    }

    private static bool TryApply(SyntaxKind kind, int left, int right, out int result)
    {
        switch (kind)
        {
            case SyntaxKind.AddExpression: result = left + right; return true;
            case SyntaxKind.SubtractExpression: result = left - right; return true;
            case SyntaxKind.MultiplyExpression: result = left * right; return true;
            case SyntaxKind.DivideExpression when right != 0: result = left / right; return true;
            case SyntaxKind.ModuloExpression when right != 0: result = left % right; return true;
            default: result = 0; return false;
        }
    }
}
