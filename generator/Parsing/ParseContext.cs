using System.Collections.Generic;
using System.Threading;
using Microsoft.CodeAnalysis;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Parsing;

/// <summary>State shared by the parsers while one model is read: the compilation, diagnostics found so far, and the forward methods met.</summary>
internal sealed class ParseContext
{
    private readonly Dictionary<SyntaxTree, SemanticModel> _semanticModels = new();

    public ParseContext(Compilation compilation, CancellationToken cancellationToken)
    {
        Compilation = compilation;
        CancellationToken = cancellationToken;
    }

    public Compilation Compilation { get; }

    public CancellationToken CancellationToken { get; }

    public List<DiagnosticInfo> Diagnostics { get; } = new();

    /// <summary>Forward methods of user layer types, by fully qualified type name, in the order first met.</summary>
    public List<ForwardMethod> LayerForwards { get; } = new();

    public HashSet<string> ParsedLayerTypes { get; } = new();

    public SemanticModel SemanticModelFor(SyntaxNode node)
    {
        var tree = node.SyntaxTree;
        if (!_semanticModels.TryGetValue(tree, out var model))
        {
            // A model's layers may be declared in other files, so one semantic model per tree is needed.
#pragma warning disable RS1030
            model = Compilation.GetSemanticModel(tree);
#pragma warning restore RS1030
            _semanticModels[tree] = model;
        }
        return model;
    }

    public void Report(DiagnosticInfo diagnostic) => Diagnostics.Add(diagnostic);
}
