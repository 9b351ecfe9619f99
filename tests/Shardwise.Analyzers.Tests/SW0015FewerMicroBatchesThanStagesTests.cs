using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0015FewerMicroBatchesThanStagesTests
{
    [TestMethod]
    public async Task EnoughOrUnstatedMicroBatchesAreAccepted()
    {
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 3)"));
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 3, MicroBatches = 3)"));
        await VerifyAsync(ParallelismModels.Classifier("Model(MicroBatches = 1)"));
    }

    [TestMethod]
    public async Task FewerMicroBatchesThanStagesStateTheBubble()
    {
        // p = 3, m = 2: (3 - 1)/(2 + 3 - 1) = 50%; m = 3 gives 2/5, m = 12 gives 2/14.
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 3, MicroBatches = 2)|}"),
            Diagnostic("SW0015").WithLocation(0).WithArguments("Classifier", "2", "3", "50.0%", "40.0%", "12", "14.3%"));
    }

    [TestMethod]
    public async Task CodeFixSetsMicroBatchesToPipelineOrFourTimesPipeline()
    {
        string source = ParallelismModels.Classifier("Model(Pipeline = 3, MicroBatches = 2)");
        var (titles, toPipeline) = await CodeFixRunner.ApplyAsync(source, "SW0015", action: 0);
        CollectionAssert.AreEqual(new[] { "Set MicroBatches = 3", "Set MicroBatches = 12" }, titles);
        Assert.AreEqual(source.Replace("MicroBatches = 2", "MicroBatches = 3"), toPipeline);
        await VerifyAsync(toPipeline);

        var (_, toFourP) = await CodeFixRunner.ApplyAsync(source, "SW0015", action: 1);
        Assert.AreEqual(source.Replace("MicroBatches = 2", "MicroBatches = 12"), toFourP);
        await VerifyAsync(toFourP);
    }
}
