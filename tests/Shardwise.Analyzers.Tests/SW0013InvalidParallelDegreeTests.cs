using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0013InvalidParallelDegreeTests
{
    [TestMethod]
    public async Task ZeroStagesAndNegativeTensorDegreeAreReported()
    {
        await VerifyAsync(ParallelismModels.Classifier("{|#0:Model(Pipeline = 0, Tensor = -2)|}"),
            Diagnostic("SW0013").WithLocation(0).WithArguments("Pipeline", "0", "Classifier"),
            Diagnostic("SW0013").WithLocation(0).WithArguments("Tensor", "-2", "Classifier"));
    }

    [TestMethod]
    public async Task DegreesOfOneAreAccepted()
    {
        await VerifyAsync(ParallelismModels.Classifier("Model(Pipeline = 1, Tensor = 1)"));
    }
}
