using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0010MoreStagesThanLayersTests
{
    [TestMethod]
    public async Task FiveStagesForFourLayersAreReportedAtTheAttribute()
    {
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 5)|}"),
            Diagnostic("SW0010").WithLocation(0).WithArguments("Classifier", "5", "4", "input, hidden, classifier, loss"));
    }

    [TestMethod]
    public async Task AsManyStagesAsLayersWithParametersAreAccepted()
    {
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 3)"));
    }

    [TestMethod]
    public async Task TinyGptWithTwoStagesHasOnlyTheTiedWeightNote()
    {
        await VerifyAsync("using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs").Replace("[Model]", "[{|#0:Model(Pipeline = 2)|}]"),
            Diagnostic("SW0016").WithLocation(0).WithArguments("tokens.weight", "TinyGpt", "0 and 1", "8,320"));
    }

    [TestMethod]
    public async Task LongLayerListsAreShortened()
    {
        // TinyGpt with 12 blocks has 17 layers.
        string source = "using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs")
            .Replace("[Model]", "[{|#0:Model(Pipeline = 18)|}]").Replace("Depth = 4;", "Depth = 12;");
        await VerifyAsync(source, Diagnostic("SW0010").WithLocation(0).WithArguments(
            "TinyGpt", "18", "17", "tokens, positions, blocks.0, blocks.1, ..., tokens (tied), loss"));
    }
}
