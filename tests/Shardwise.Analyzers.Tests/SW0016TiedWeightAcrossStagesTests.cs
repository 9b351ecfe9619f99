using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0016TiedWeightAcrossStagesTests
{
    private static string TinyGpt(string attribute) => "using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs").Replace("[Model]", "[" + attribute + "]");

    [TestMethod]
    public async Task TiedWeightOnOneStageIsNotNoted()
    {
        await VerifyAsync(TinyGpt("Model"));
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 3)")); // nothing tied
    }

    [TestMethod]
    public async Task TiedEmbeddingAndHeadOnDifferentStagesAreNoted()
    {
        // The token table (65 × 128) is the embedding on the first stage and the output head on the last.
        await VerifyAsync(TinyGpt("{|#0:Model(Pipeline = 4)|}"),
            Diagnostic("SW0016").WithLocation(0).WithArguments("tokens.weight", "TinyGpt", "0 and 3", "8,320"));
    }
}
