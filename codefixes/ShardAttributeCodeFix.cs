using System.Collections.Immutable;
using System.Composition;
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
/// Fixes SW0017 where a layer that is not sharded receives a column-split tensor: marks the layer's field
/// <c>[Shard(ShardKind.Row)]</c>, completing Megatron's column-then-row pair. The field is found by name in the type
/// that declares the layer (the diagnostic points at its construction, in a field initializer or a constructor).
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ShardAttributeCodeFix)), Shared]
public sealed class ShardAttributeCodeFix : CodeFixProvider
{
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create("SW0017");

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        foreach (var diagnostic in context.Diagnostics)
        {
            if (!diagnostic.Properties.TryGetValue(FixProperties.ShardKind, out var kind) || kind is null) continue;
            if (!diagnostic.Properties.TryGetValue(FixProperties.Field, out var field) || field is null) continue;
            string title = $"Mark '{field}' [Shard(ShardKind.{kind})]";
            context.RegisterCodeFix(
                CodeAction.Create(title, token => AddShardAsync(context.Document, diagnostic.Location, field, kind, token), equivalenceKey: "Shardwise.Shard." + kind),
                diagnostic);
        }
        return Task.CompletedTask;
    }

    private static async Task<Document> AddShardAsync(Document document, Location location, string fieldName, string kind, CancellationToken cancellationToken)
    {
        var root = await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false);
        var type = root?.FindNode(location.SourceSpan).FirstAncestorOrSelf<TypeDeclarationSyntax>();
        var field = type?.Members.OfType<FieldDeclarationSyntax>()
            .FirstOrDefault(f => f.Declaration.Variables.Any(v => v.Identifier.ValueText == fieldName));
        if (root is null || field is null || field.AttributeLists.Count == 0) return document;

        var shard = SyntaxFactory.Attribute(SyntaxFactory.IdentifierName("Shard"), SyntaxFactory.AttributeArgumentList(
            SyntaxFactory.SingletonSeparatedList(SyntaxFactory.AttributeArgument(SyntaxFactory.MemberAccessExpression(
                SyntaxKind.SimpleMemberAccessExpression, SyntaxFactory.IdentifierName("ShardKind"), SyntaxFactory.IdentifierName(kind))))));
        var list = field.AttributeLists[0];
        return document.WithSyntaxRoot(root.ReplaceNode(list, list.AddAttributes(shard)));
    }
}
