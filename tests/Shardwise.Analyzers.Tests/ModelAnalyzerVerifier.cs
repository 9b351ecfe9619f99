using System.Threading.Tasks;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;

namespace Shardwise.Analyzers.Tests;

/// <summary>Runs <see cref="ModelAnalyzer"/> over test sources, offline, and compares the diagnostics exactly.</summary>
internal static class ModelAnalyzerVerifier
{
    /// <summary>An expected diagnostic, described by the analyzer's own descriptor so the message text is checked too.</summary>
    public static DiagnosticResult Diagnostic(string id) => CSharpAnalyzerVerifier<ModelAnalyzer, DefaultVerifier>.Diagnostic(id);

    public static Task VerifyAsync(string source, params DiagnosticResult[] expected)
        => VerifyAsync(new[] { source }, expected);

    /// <summary>Analyzes one compilation made of <paramref name="sources"/> (one document each, in order).</summary>
    public static async Task VerifyAsync(string[] sources, params DiagnosticResult[] expected)
    {
        var test = new CSharpAnalyzerTest<ModelAnalyzer, DefaultVerifier>
        {
            ReferenceAssemblies = TestReferences.NoPackages,
        };
        for (int i = 0; i < sources.Length; i++) test.TestState.Sources.Add(($"/0/Test{i}.cs", sources[i]));
        test.TestState.AdditionalReferences.AddRange(TestReferences.All);
        test.ExpectedDiagnostics.AddRange(expected);
        await test.RunAsync();
    }
}
