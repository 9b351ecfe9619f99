using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0011StageWithoutParametersTests
{
    [TestMethod]
    public async Task LossAloneOnTheLastStageIsReported()
    {
        // Four layers on four stages: the loss, which has no parameters, must be a stage of its own.
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 4)|}"),
            Diagnostic("SW0011").WithLocation(0).WithArguments("3", "Classifier", "loss", "3", "4", "4"));
    }

    [TestMethod]
    public async Task PlannerKeepsTheLossWithALayerThatHasParameters()
    {
        // Three stages: the cut puts the loss with the classifier instead of leaving a stage empty of parameters.
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 3)"));
    }

    [TestMethod]
    public async Task TiedHeadCountsAsParameters()
    {
        // TinyGpt on 8 stages: the last two layers (tied head, loss) share a stage; the tied head holds tokens.weight.
        await VerifyAsync("using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs").Replace("[Model]", "[{|#0:Model(Pipeline = 8)|}]"),
            Diagnostic("SW0016").WithLocation(0).WithArguments("tokens.weight", "TinyGpt", "0 and 7", "8,320"));
    }

    [TestMethod]
    public async Task UnpipelinedModelWithoutParametersIsAccepted()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Scorer
            {
                [Forward]
                public Tensor Forward([Shape(8, 5)] Tensor logits, [Tokens(8)] Tensor labels) => Loss.CrossEntropy(logits, labels);
            }
            """;

        await VerifyAsync(source);
    }
}
