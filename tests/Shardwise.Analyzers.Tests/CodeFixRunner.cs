using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.CodeFixes;

namespace Shardwise.Analyzers.Tests;

/// <summary>
/// Applies a code fix (<see cref="ModelArgumentCodeFix"/> unless told otherwise) the way the IDE does: analyze a one-document project, offer the fixes for
/// the first diagnostic with an id, apply one, and return the fixed source.
/// </summary>
internal static class CodeFixRunner
{
    /// <summary>The titles offered for the first <paramref name="id"/> diagnostic, and the source after applying <paramref name="action"/>.</summary>
    public static async Task<(string[] Titles, string Fixed)> ApplyAsync(string source, string id, int action = 0, CodeFixProvider? provider = null)
    {
        using var workspace = new AdhocWorkspace();
        var project = workspace.AddProject("Test", LanguageNames.CSharp)
            .WithCompilationOptions(new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary))
            .WithMetadataReferences(TestReferences.All);
        var document = project.AddDocument("Test0.cs", source, filePath: "/0/Test0.cs");
        var compilation = (await document.Project.GetCompilationAsync())!;
        var diagnostics = await compilation.WithAnalyzers(new DiagnosticAnalyzer[] { new ModelAnalyzer() }.ToImmutableArray()).GetAnalyzerDiagnosticsAsync();
        var diagnostic = diagnostics.FirstOrDefault(d => d.Id == id);
        Assert.IsNotNull(diagnostic, $"no {id} in: {string.Join("; ", diagnostics)}");

        var actions = new List<CodeAction>();
        var context = new CodeFixContext(document, diagnostic, (a, _) => actions.Add(a), CancellationToken.None);
        await (provider ?? new ModelArgumentCodeFix()).RegisterCodeFixesAsync(context);
        Assert.IsTrue(actions.Count > action, $"{actions.Count} fixes offered for {id}");

        var operations = await actions[action].GetOperationsAsync(CancellationToken.None);
        var solution = operations.OfType<ApplyChangesOperation>().Single().ChangedSolution;
        var text = await solution.GetDocument(document.Id)!.GetTextAsync();
        return (actions.Select(a => a.Title).ToArray(), text.ToString());
    }
}
