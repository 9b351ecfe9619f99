using System.Collections.Immutable;
using System.Composition;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Shardwise.Analyzers;

namespace Shardwise.CodeFixes;

/// <summary>
/// Fixes a plan diagnostic by setting one named argument of the [Model] attribute: SW0012 lowers <c>Tensor</c> to the
/// largest degree that divides every sharded size; SW0015 raises <c>MicroBatches</c> to Pipeline (or 4 × Pipeline).
/// The argument and value travel on the diagnostic (<see cref="FixProperties"/>); the attribute is its location or,
/// for SW0012 reported at a [Shard] attribute, its additional location.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ModelArgumentCodeFix)), Shared]
public sealed class ModelArgumentCodeFix : CodeFixProvider
{
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create("SW0012", "SW0015");

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        foreach (var diagnostic in context.Diagnostics)
        {
            if (!diagnostic.Properties.TryGetValue(FixProperties.Argument, out var argument) || argument is null) continue;
            var location = diagnostic.AdditionalLocations.Count > 0 ? diagnostic.AdditionalLocations[0] : diagnostic.Location;
            var document = location.SourceTree is { } tree ? context.Document.Project.Solution.GetDocument(tree) : null;
            if (document is null) continue;

            foreach (var key in new[] { FixProperties.Value, FixProperties.Alternative })
            {
                if (!diagnostic.Properties.TryGetValue(key, out var value) || value is null) continue;
                string title = "Set " + argument + " = " + value;
                context.RegisterCodeFix(
                    CodeAction.Create(title, token => SetArgumentAsync(document, location, argument, value, token), equivalenceKey: "Shardwise." + key + "." + argument),
                    diagnostic);
            }
        }
        return Task.CompletedTask;
    }

    private static async Task<Document> SetArgumentAsync(Document document, Location location, string name, string value, CancellationToken cancellationToken)
    {
        var root = await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false);
        var attribute = root?.FindNode(location.SourceSpan).FirstAncestorOrSelf<AttributeSyntax>();
        if (root is null || attribute is null) return document;

        var literal = SyntaxFactory.LiteralExpression(SyntaxKind.NumericLiteralExpression,
            SyntaxFactory.Literal(int.Parse(value, NumberStyles.Integer, CultureInfo.InvariantCulture)));
        var existing = attribute.ArgumentList?.Arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.ValueText == name);
        SyntaxNode updated = existing is not null
            ? attribute.ReplaceNode(existing.Expression, literal.WithTriviaFrom(existing.Expression))
            : attribute.AddArgumentListArguments(SyntaxFactory.AttributeArgument(literal)
                .WithNameEquals(SyntaxFactory.NameEquals(SyntaxFactory.IdentifierName(name))));
        return document.WithSyntaxRoot(root.ReplaceNode(attribute, updated));
    }
}
