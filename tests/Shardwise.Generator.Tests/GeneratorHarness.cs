using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Shardwise.Generator.Tests;

/// <summary>Compiles test sources against the runtime and runs the Shardwise generator over them.</summary>
internal static class GeneratorHarness
{
    private static readonly Lazy<MetadataReference[]> LazyReferences = new(() =>
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "netstandard.dll" or "mscorlib.dll")
            .Append(typeof(ModelAttribute).Assembly.Location);
        return paths.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray();
    });

    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln"))) return dir.FullName;
            }
            throw new InvalidOperationException("Compiler.sln not found above " + AppContext.BaseDirectory);
        }
    }

    public static CSharpCompilation Compile(params (string Path, string Text)[] sources) => Compile(OutputKind.DynamicallyLinkedLibrary, withTrainer: false, sources);

    /// <param name="withTrainer">Also reference Shardwise.Training (the trainer CLI the entry point calls).</param>
    public static CSharpCompilation Compile(OutputKind kind, bool withTrainer, params (string Path, string Text)[] sources) => CSharpCompilation.Create(
        "TestModels",
        sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, ParseOptions, s.Path)),
        withTrainer
            ? LazyReferences.Value.Append(MetadataReference.CreateFromFile(typeof(Shardwise.Training.Cli.TrainerCli).Assembly.Location))
            : LazyReferences.Value,
        new CSharpCompilationOptions(kind, nullableContextOptions: NullableContextOptions.Enable));

    public static GeneratorDriver CreateDriver(bool trackSteps = false) => CSharpGeneratorDriver.Create(
        new[] { new ShardwiseGenerator().AsSourceGenerator() },
        parseOptions: ParseOptions,
        driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: trackSteps));

    /// <summary>Runs the generator; returns generated sources by hint name and the diagnostics of the combined compilation.</summary>
    public static (Dictionary<string, string> Sources, IReadOnlyList<Diagnostic> Diagnostics) Run(params (string Path, string Text)[] sources)
    {
        var compilation = Compile(sources);
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        var generated = driver.GetRunResult().GeneratedTrees.ToDictionary(t => Path.GetFileName(t.FilePath), t => t.GetText().ToString());
        var diagnostics = generatorDiagnostics.Concat(output.GetDiagnostics()).Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        return (generated, diagnostics);
    }

    public static (string Path, string Text) Example(string relativePath)
    {
        var path = Path.Combine(RepositoryRoot, relativePath);
        return (path, File.ReadAllText(path));
    }

    /// <summary>The TinyGpt example with its block array declared as <paramref name="declaration"/>.</summary>
    public static (string Path, string Text) TinyGptWithBlocks(string declaration)
    {
        var example = Example("examples/TinyGpt/TinyGpt.cs");
        const string field = "[Layer, LayerDrop, TokenDrop] private readonly Block[] blocks";
        if (!example.Text.Contains(field)) throw new InvalidOperationException("the TinyGpt example no longer declares " + field);
        return (example.Path, example.Text.Replace(field, declaration));
    }
}
