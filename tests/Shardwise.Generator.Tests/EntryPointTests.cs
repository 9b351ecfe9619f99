using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// An executable whose one language model is a [Model], referencing the trainer, gets the trainer CLI as its entry
/// point from the build; a project with its own Main, a library, or one without the trainer does not.
/// </summary>
[TestClass]
public sealed class EntryPointTests
{
    private const string HintName = "Shardwise.TrainerProgram.g.cs";

    private static string? Generated(OutputKind kind, bool withTrainer, params (string Path, string Text)[] sources)
    {
        var compilation = GeneratorHarness.Compile(kind, withTrainer, sources);
        var driver = GeneratorHarness.CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out _);
        var errors = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.AreEqual(0, errors.Count, string.Join("\n", errors));
        return driver.GetRunResult().GeneratedTrees.FirstOrDefault(t => Path.GetFileName(t.FilePath) == HintName)?.ToString();
    }

    [TestMethod]
    public void ExecutableGetsTheTrainerMain()
    {
        var source = Generated(OutputKind.ConsoleApplication, withTrainer: true, GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs"));
        Assert.IsNotNull(source, "no entry point was generated");
        StringAssert.Contains(source, "public static int Main(string[] args) => global::Shardwise.Training.Cli.TrainerCli.Run<global::Shardwise.Examples.TinyGpt>(args);");
    }

    [TestMethod]
    public void UserMainLibraryOrMissingTrainerGetsNone()
    {
        var model = GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs");
        var program = ("Program.cs", "System.Console.WriteLine(\"mine\");");
        Assert.IsNull(Generated(OutputKind.ConsoleApplication, withTrainer: true, model, program), "a user entry point wins");
        Assert.IsNull(Generated(OutputKind.DynamicallyLinkedLibrary, withTrainer: true, model), "a library has no entry point");
        Assert.IsNull(Generated(OutputKind.ConsoleApplication, withTrainer: false, model, program), "without Shardwise.Training there is no trainer to call");
    }
}
