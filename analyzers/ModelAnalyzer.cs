using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Shardwise.Generator;
using Shardwise.Generator.Parsing;
using Shardwise.Generator.Validation;

namespace Shardwise.Analyzers;

/// <summary>
/// Reports, in the IDE and the build, why a [Model] cannot be compiled: the diagnostics come from the generator's
/// own validation (<see cref="ModelValidator"/>), so what the analyzer accepts is exactly what the generator emits.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class ModelAnalyzer : DiagnosticAnalyzer
{
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } =
        ImmutableArray.Create(DiagnosticDescriptors.All);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterSymbolAction(AnalyzeType, SymbolKind.NamedType);
    }

    private static void AnalyzeType(SymbolAnalysisContext context)
    {
        var type = (INamedTypeSymbol)context.Symbol;
        if (!Symbols.HasAttribute(type, KnownNames.ModelAttribute)) return;

        var attribute = Symbols.FindAttribute(type, KnownNames.ModelAttribute)?.ApplicationSyntaxReference?.GetSyntax(context.CancellationToken);
        foreach (var info in ModelValidator.Validate(type, context.Compilation, context.CancellationToken))
        {
            var descriptor = DiagnosticDescriptors.Find(info.Id);
            if (descriptor is null) continue;
            var location = info.Location is { } at
                ? InSourceTree(at, context.Compilation)
                : type.Locations.IsEmpty ? Location.None : type.Locations[0];
            // A fixable diagnostic reported away from the [Model] attribute (SW0012 at a [Shard] attribute, perhaps in
            // another file) carries the attribute as an additional location: the fix edits the model's degrees there.
            var properties = FixProperties.For(info);
            var additional = properties.ContainsKey(FixProperties.Argument) && attribute is not null && attribute.Span != location.SourceSpan
                ? new[] { attribute.GetLocation() }
                : Enumerable.Empty<Location>();
            context.ReportDiagnostic(Diagnostic.Create(descriptor, location, additional, properties, ToObjects(info.Arguments)));
        }
    }

    /// <summary>
    /// The location in the compilation's own syntax tree. A bare file-and-span location would be an external-file
    /// location, which '#pragma warning disable', [SuppressMessage] and generated-code filtering do not apply to.
    /// </summary>
    private static Location InSourceTree(Generator.Model.LocationInfo info, Compilation compilation)
    {
        foreach (var tree in compilation.SyntaxTrees)
        {
            if (tree.FilePath == info.FilePath && info.Span.End <= tree.Length) return Location.Create(tree, info.Span);
        }
        return info.ToLocation();
    }

    private static object[] ToObjects(Generator.Model.EquatableArray<string> arguments)
    {
        var result = new object[arguments.Count];
        for (int i = 0; i < result.Length; i++) result[i] = arguments[i];
        return result;
    }
}
