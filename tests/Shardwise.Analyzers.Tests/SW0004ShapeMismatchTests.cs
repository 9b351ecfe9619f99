using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0004ShapeMismatchTests
{
    /// <summary>A model running one user layer whose forward body is <paramref name="blockForward"/>; x is [batch, 8, 128].</summary>
    private static string ModelWithBlock(string projection, string blockForward) => $$"""
        using Shardwise;

        [Model]
        public partial class Encoder
        {
            [Layer] private readonly Block block = new();

            [Forward]
            public Tensor Forward([Shape(8, 128)] Tensor x) => block.Forward(x);
        }

        [Layer]
        public sealed class Block
        {
            [Layer] private readonly Linear projection = {{projection}};
            [Layer] private readonly LayerNorm norm = new(128);

            [Forward]
            public Tensor Forward(Tensor x)
            {
        {{blockForward}}
            }
        }
        """;

    [TestMethod]
    public async Task ConsecutiveLayersWithMatchingWidthsAreAccepted()
    {
        await VerifyAsync(ModelWithBlock("new(128, 128)", """
                    var h = projection.Forward(x);
                    return norm.Forward(h);
            """));
    }

    [TestMethod]
    public async Task LayerNormAfterAWiderLinearIsReportedAtTheLayerNormCall()
    {
        await VerifyAsync(
            ModelWithBlock("new(128, 256)", """
                    var h = projection.Forward(x);
                    return {|#0:norm.Forward(h)|};
            """),
            Diagnostic("SW0004").WithLocation(0).WithArguments("block.norm", "[batch, ..., 128]", "[batch, 8, 256]"));
    }

    [TestMethod]
    public async Task MismatchInANestedCallIsReportedAtTheInnerCall()
    {
        // The outer call never runs: the first layer whose input is wrong is the one reported.
        await VerifyAsync(
            ModelWithBlock("new(64, 128)", """
                    return norm.Forward({|#0:projection.Forward(x)|});
            """),
            Diagnostic("SW0004").WithLocation(0).WithArguments("block.projection", "[batch, ..., 64]", "[batch, 8, 128]"));
    }

    [TestMethod]
    public async Task ResidualAddOfDifferentShapesIsReportedAtThePlus()
    {
        await VerifyAsync(
            ModelWithBlock("new(128, 256)", """
                    return {|#0:x + projection.Forward(x)|};
            """),
            Diagnostic("SW0004").WithLocation(0).WithArguments("block: +", "[batch, 8, 128]", "[batch, 8, 256]"));
    }

    [TestMethod]
    public async Task RealValuesFedToAnEmbeddingAreReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Encoder
            {
                [Layer] private readonly Embedding tokens = new(65, 32);

                [Forward]
                public Tensor Forward([Shape(8)] Tensor x) => {|#0:tokens.Forward(x)|};
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0004").WithLocation(0).WithArguments("tokens", "token indices", "[batch, 8]"));
    }

    [TestMethod]
    public async Task TokensFedToALinearAreReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Encoder
            {
                [Layer] private readonly Linear output = new(8, 16);

                [Forward]
                public Tensor Forward([Tokens(8)] Tensor ids) => {|#0:output.Forward(ids)|};
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0004").WithLocation(0).WithArguments("output", "a real-valued tensor", "tokens [batch, 8]"));
    }

    [TestMethod]
    public async Task LossTargetsOfTheWrongLengthAreReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Classifier
            {
                [Layer] private readonly Linear output = new(16, 5);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(4)] Tensor labels)
                    => {|#0:Loss.CrossEntropy(output.Forward(features), labels)|};
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0004").WithLocation(0).WithArguments(
            "Loss.CrossEntropy targets", "tokens [batch, 8]", "tokens [batch, 4]"));
    }
}
