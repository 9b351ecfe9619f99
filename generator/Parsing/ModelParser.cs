using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Shardwise.Generator.Model;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator.Parsing;

/// <summary>The parse stage's result: a model (null when it cannot be compiled) and what was found wrong.</summary>
internal sealed record ParseResult(ModelSpec? Model, EquatableArray<DiagnosticInfo> Diagnostics);

/// <summary>Reads a [Model] class into a <see cref="ModelSpec"/>. Shared by the generator and the analyzer.</summary>
internal static class ModelParser
{
    public static ParseResult Parse(INamedTypeSymbol model, Compilation compilation, CancellationToken cancellationToken)
    {
        var context = new ParseContext(compilation, cancellationToken);

        var declarations = model.DeclaringSyntaxReferences
            .Select(r => r.GetSyntax(cancellationToken)).OfType<ClassDeclarationSyntax>().ToList();
        if (!declarations.Any(d => d.Modifiers.Any(SyntaxKind.PartialKeyword)))
        {
            var location = declarations.Count > 0 ? LocationInfo.From(declarations[0].Identifier.GetLocation()) : null;
            context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.ModelMustBePartial, location, model.Name));
        }

        // The generated partial re-opens every enclosing type, so those must be partial too.
        for (var outer = model.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            var outerDeclaration = outer.DeclaringSyntaxReferences.Select(r => r.GetSyntax(cancellationToken)).OfType<TypeDeclarationSyntax>().FirstOrDefault();
            if (outerDeclaration is not null && !outerDeclaration.Modifiers.Any(SyntaxKind.PartialKeyword))
                context.Report(DiagnosticInfo.Create(DiagnosticDescriptors.ModelMustBePartial, LocationInfo.From(outerDeclaration.Identifier.GetLocation()), outer.Name));
        }

        var forwardParser = new ForwardParser(context);
        var forward = forwardParser.ParseModelForward(model);
        var root = new LayerTreeParser(context, forwardParser).ParseModel(model);

        var diagnostics = context.Diagnostics.ToEquatableArray();
        if (forward is null || context.Diagnostics.Count > 0) return new ParseResult(null, diagnostics);

        var attribute = Symbols.FindAttribute(model, KnownNames.ModelAttribute);
        var spec = new ModelSpec(
            Namespace: model.ContainingNamespace.IsGlobalNamespace ? "" : model.ContainingNamespace.ToDisplayString(),
            ClassName: model.Name,
            ContainingTypes: ContainingTypes(model).ToEquatableArray(),
            Accessibility: SyntaxFacts.GetText(model.DeclaredAccessibility),
            Pipeline: NamedInt(attribute, "Pipeline", 1),
            Tensor: NamedInt(attribute, "Tensor", 1),
            Forward: forward,
            LayerForwards: context.LayerForwards.ToEquatableArray(),
            Root: root)
        {
            Assumptions = new PlanningAssumptions(
                DeviceMemoryGiB: NamedDouble(attribute, "DeviceMemoryGiB", 0),
                MicroBatch: NamedInt(attribute, "MicroBatch", 1),
                MicroBatches: NamedInt(attribute, "MicroBatches", 0),
                Sequence: NamedInt(attribute, "Sequence", 0),
                ZeroStage: NamedInt(attribute, "ZeroStage", 0),
                DataParallel: NamedInt(attribute, "DataParallel", 1),
                StageStarts: NamedStrings(attribute, "StageStarts")),
            AttributeLocation = LocationInfo.From(attribute?.ApplicationSyntaxReference?.GetSyntax(cancellationToken)),
        };
        return new ParseResult(spec, diagnostics);
    }

    private static int NamedInt(AttributeData? attribute, string name, int fallback)
    {
        if (attribute is null) return fallback;
        foreach (var pair in attribute.NamedArguments)
        {
            if (pair.Key == name && pair.Value.Value is int value) return value;
        }
        return fallback;
    }

    private static double NamedDouble(AttributeData? attribute, string name, double fallback)
    {
        if (attribute is null) return fallback;
        foreach (var pair in attribute.NamedArguments)
        {
            if (pair.Key != name) continue;
            if (pair.Value.Value is double d) return d;
            if (pair.Value.Value is int i) return i;
        }
        return fallback;
    }

    private static EquatableArray<string> NamedStrings(AttributeData? attribute, string name)
    {
        if (attribute is null) return EquatableArray<string>.Empty;
        foreach (var pair in attribute.NamedArguments)
        {
            if (pair.Key == name && pair.Value.Kind == TypedConstantKind.Array && !pair.Value.IsNull)
                return pair.Value.Values.Select(v => v.Value as string ?? "").ToEquatableArray();
        }
        return EquatableArray<string>.Empty;
    }

    /// <summary>Declarations of enclosing types (outermost first), so a nested model's partial can be re-opened.</summary>
    private static IEnumerable<string> ContainingTypes(INamedTypeSymbol model)
    {
        var chain = new List<string>();
        for (var type = model.ContainingType; type is not null; type = type.ContainingType)
        {
            var keyword = type.IsRecord ? "record" : type.TypeKind == TypeKind.Struct ? "struct" : "class";
            chain.Insert(0, $"partial {keyword} {type.Name}");
        }
        return chain;
    }
}
