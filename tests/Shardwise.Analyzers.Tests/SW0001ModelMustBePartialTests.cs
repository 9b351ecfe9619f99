using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0001ModelMustBePartialTests
{
    [TestMethod]
    public async Task ModelWithoutPartialIsReportedAtItsName()
    {
        const string source = """
            using Shardwise;

            [Model]
            public class {|#0:Classifier|}
            {
                [Layer] private readonly Linear output = new(16, 5);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
                    => Loss.CrossEntropy(output.Forward(features), labels);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0001").WithLocation(0).WithArguments("Classifier"));
    }

    [TestMethod]
    public async Task PartialModelIsAccepted()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Classifier
            {
                [Layer] private readonly Linear output = new(16, 5);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
                    => Loss.CrossEntropy(output.Forward(features), labels);
            }
            """;

        await VerifyAsync(source);
    }

    [TestMethod]
    public async Task ModelSplitOverTwoPartialDeclarationsIsAccepted()
    {
        const string layers = """
            using Shardwise;

            [Model]
            public partial class Classifier
            {
                [Layer] private readonly Linear output = new(16, 5);
            }
            """;
        const string forward = """
            using Shardwise;

            public partial class Classifier
            {
                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
                    => Loss.CrossEntropy(output.Forward(features), labels);
            }
            """;

        await VerifyAsync(new[] { layers, forward });
    }
}
