using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0007MissingInputShapeTests
{
    private static string ModelWithLabels(string labelsParameter) => $$"""
        using Shardwise;

        [Model]
        public partial class Classifier
        {
            [Layer] private readonly Linear output = new(16, 5);

            [Forward]
            public Tensor Forward([Shape(8, 16)] Tensor features, {{labelsParameter}})
                => Loss.CrossEntropy(output.Forward(features), labels);
        }
        """;

    [TestMethod]
    public async Task InputWithTokensIsAccepted()
    {
        await VerifyAsync(ModelWithLabels("[Tokens(8)] Tensor labels"));
    }

    [TestMethod]
    public async Task InputWithoutAttributeIsReportedAtTheParameter()
    {
        await VerifyAsync(
            ModelWithLabels("Tensor {|#0:labels|}"),
            Diagnostic("SW0007").WithLocation(0).WithArguments("labels", "Classifier"));
    }

    [TestMethod]
    public async Task InputWithAnEmptyShapeIsReported()
    {
        await VerifyAsync(
            ModelWithLabels("[Tokens] Tensor {|#0:labels|}"),
            Diagnostic("SW0007").WithLocation(0).WithArguments("labels", "Classifier"));
    }

    [TestMethod]
    public async Task LayerForwardInputsNeedNoShape()
    {
        // Only the model's inputs are declared; a layer's inputs take the shapes of whatever is passed in.
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Block block = new();

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x) => block.Forward(x);
            }

            [Layer]
            public sealed class Block
            {
                [Layer] private readonly Linear output = new(16, 16);

                [Forward]
                public Tensor Forward(Tensor x) => output.Forward(x);
            }
            """;

        await VerifyAsync(source);
    }
}
