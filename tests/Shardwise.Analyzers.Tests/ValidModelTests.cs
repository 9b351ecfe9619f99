using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

/// <summary>Models the generator can compile must get no diagnostics at all.</summary>
[TestClass]
public sealed class ValidModelTests
{
    [TestMethod]
    public async Task TinyGptExampleHasNoDiagnostics()
    {
        await VerifyAsync("using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs"));
    }

    [TestMethod]
    public async Task MlpClassifierExampleHasNoDiagnostics()
    {
        await VerifyAsync("using Shardwise;\n" + RepositoryFiles.Read("examples/MlpClassifier/MlpClassifier.cs"));
    }

    [TestMethod]
    public async Task ModelWhoseLayerIsDeclaredInAnotherFileHasNoDiagnostics()
    {
        const string model = """
            using Shardwise;

            [Model]
            public partial class Classifier
            {
                [Layer] private readonly Linear input = new(16, 32);
                [Layer] private readonly Residual hidden = new(32);
                [Layer] private readonly Linear output = new(32, 5);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
                {
                    var h = hidden.Forward(input.Forward(features));
                    return Loss.CrossEntropy(output.Forward(h), labels);
                }
            }
            """;
        const string layer = """
            using Shardwise;

            [Layer]
            public sealed class Residual
            {
                [Layer] private readonly LayerNorm norm;
                [Layer] private readonly Linear mix;

                public Residual(int width)
                {
                    norm = new LayerNorm(width);
                    mix = new Linear(width, width);
                }

                [Forward]
                public Tensor Forward(Tensor x) => x + Activations.Gelu(mix.Forward(norm.Forward(x)));
            }
            """;

        await VerifyAsync(new[] { model, layer });
    }

    [TestMethod]
    public async Task ShapeErrorInALayerDeclaredInAnotherFileIsReportedInThatFile()
    {
        const string model = """
            using Shardwise;

            [Model]
            public partial class Classifier
            {
                [Layer] private readonly Linear input = new(16, 32);
                [Layer] private readonly Residual hidden = new(32);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor features) => hidden.Forward(input.Forward(features));
            }
            """;
        const string layer = """
            using Shardwise;

            [Layer]
            public sealed class Residual(int width)
            {
                [Layer] private readonly Linear mix = new(width, 2 * width);

                [Forward]
                public Tensor Forward(Tensor x) => {|#0:x + mix.Forward(x)|};
            }
            """;

        await VerifyAsync(new[] { model, layer },
            Diagnostic("SW0004").WithLocation(0).WithArguments("hidden: +", "[batch, 8, 32]", "[batch, 8, 64]"));
    }
}
