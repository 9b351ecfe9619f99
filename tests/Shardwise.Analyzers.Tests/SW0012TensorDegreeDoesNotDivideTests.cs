using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0012TensorDegreeDoesNotDivideTests
{
    [TestMethod]
    public async Task DivisibleSizesAreAccepted()
    {
        await VerifyAsync(ParallelismModels.Encoder("Model(Tensor = 4)", vocabulary: 64, width: 32, heads: 4, classes: 8));
    }

    [TestMethod]
    public async Task VocabularyAndOutputFeaturesAreReportedWithTheirDivisors()
    {
        await VerifyAsync(ParallelismModels.Encoder("{|#0:Model(Tensor = 2)|}", vocabulary: 65, width: 32, heads: 4, classes: 5),
            Diagnostic("SW0012").WithLocation(0).WithArguments("tokens", "vocabulary", "65", "2", "1, 5, 13, 65", "1"),
            Diagnostic("SW0012").WithLocation(0).WithArguments("head", "out features", "5", "2", "1, 5", "1"));
    }

    [TestMethod]
    public async Task AttentionHeadsAndWidthAreReported()
    {
        // 6 heads of width 4: Tensor = 4 divides the width 24 but not the 6 heads.
        await VerifyAsync(ParallelismModels.Encoder("{|#0:Model(Tensor = 4)|}", vocabulary: 64, width: 24, heads: 6, classes: 8),
            Diagnostic("SW0012").WithLocation(0).WithArguments("attention", "heads", "6", "4", "1, 2, 3, 6", "1, 2"));
        // 2 heads of width 5: Tensor = 4 splits neither the heads nor the width.
        await VerifyAsync(ParallelismModels.Encoder("{|#0:Model(Tensor = 4)|}", vocabulary: 64, width: 10, heads: 2, classes: 8),
            Diagnostic("SW0012").WithLocation(0).WithArguments("attention", "heads", "2", "4", "1, 2", "1, 2"),
            Diagnostic("SW0012").WithLocation(0).WithArguments("attention", "dimension", "10", "4", "1, 2, 5, 10", "1, 2"));
    }

    [TestMethod]
    public async Task EveryBlockOfTinyGptIsNamed()
    {
        // TinyGpt has 4 heads per block and a 65-token vocabulary: Tensor = 8 splits neither.
        string source = "using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs").Replace("[Model]", "[{|#0:Model(Tensor = 8)|}]");
        await VerifyAsync(source,
            Diagnostic("SW0012").WithLocation(0).WithArguments("tokens", "vocabulary", "65", "8", "1, 5, 13, 65", "1"),
            Diagnostic("SW0012").WithLocation(0).WithArguments("blocks.0.attention", "heads", "4", "8", "1, 2, 4", "1"),
            Diagnostic("SW0012").WithLocation(0).WithArguments("blocks.1.attention", "heads", "4", "8", "1, 2, 4", "1"),
            Diagnostic("SW0012").WithLocation(0).WithArguments("blocks.2.attention", "heads", "4", "8", "1, 2, 4", "1"),
            Diagnostic("SW0012").WithLocation(0).WithArguments("blocks.3.attention", "heads", "4", "8", "1, 2, 4", "1"));
    }
}
