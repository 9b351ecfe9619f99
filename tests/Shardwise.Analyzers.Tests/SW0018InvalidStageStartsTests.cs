using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0018InvalidStageStartsTests
{
    private const string Layers = "input, hidden, classifier, loss";

    [TestMethod]
    public async Task ValidPinnedCutIsAccepted()
    {
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 2, StageStarts = new[] { \"classifier\" })"));
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 3, StageStarts = new[] { \"hidden\", \"classifier\" })"));
    }

    [TestMethod]
    public async Task UnknownLayerIsReportedWithTheValidNames()
    {
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 2, StageStarts = new[] { \"blocks.2\" })|}"),
            Diagnostic("SW0018").WithLocation(0).WithArguments("Classifier", "names 'blocks.2', which is not a layer of the model", Layers));
    }

    [TestMethod]
    public async Task OutOfOrderStartsAreReported()
    {
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 3, StageStarts = new[] { \"classifier\", \"hidden\" })|}"),
            Diagnostic("SW0018").WithLocation(0).WithArguments("Classifier",
                "names 'hidden' after 'classifier', but stage starts must follow the layer order, each after the last", Layers));
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 2, StageStarts = new[] { \"input\" })|}"),
            Diagnostic("SW0018").WithLocation(0).WithArguments("Classifier", "names 'input', the first layer, which always starts stage 0", Layers));
    }

    [TestMethod]
    public async Task WrongCountIsReported()
    {
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 3, StageStarts = new[] { \"hidden\" })|}"),
            Diagnostic("SW0018").WithLocation(0).WithArguments("Classifier",
                "names 1 stage start but Pipeline = 3 needs 2 (the first layer of every stage after the first)", Layers));
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(StageStarts = new[] { \"hidden\" })|}"),
            Diagnostic("SW0018").WithLocation(0).WithArguments("Classifier",
                "names 1 stage start but Pipeline = 1 needs 0 (the first layer of every stage after the first)", Layers));
    }

    [TestMethod]
    public async Task PinnedCutLeavingAStageWithoutParametersIsReportedAsSuch()
    {
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 2, StageStarts = new[] { \"loss\" })|}"),
            Diagnostic("SW0011").WithLocation(0).WithArguments("1", "Classifier", "loss", "3", "4", "2"));
    }
}
