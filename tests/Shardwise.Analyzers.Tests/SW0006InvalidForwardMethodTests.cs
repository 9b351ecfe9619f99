using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0006InvalidForwardMethodTests
{
    [TestMethod]
    public async Task ModelWithOneForwardReturningTensorIsAccepted()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Linear output = new(16, 16);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x) => output.Forward(x);
            }
            """;

        await VerifyAsync(source);
    }

    [TestMethod]
    public async Task ModelWithoutForwardIsReportedAtItsName()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class {|#0:Regressor|}
            {
                [Layer] private readonly Linear output = new(16, 16);

                public Tensor Forward([Shape(8, 16)] Tensor x) => output.Forward(x);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0006").WithLocation(0).WithArguments("Regressor", "has no [Forward] method"));
    }

    [TestMethod]
    public async Task ModelWithTwoForwardsIsReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class {|#0:Regressor|}
            {
                [Layer] private readonly Linear output = new(16, 16);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x) => output.Forward(x);

                [Forward]
                public Tensor Predict([Shape(8, 16)] Tensor x) => output.Forward(x);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0006").WithLocation(0).WithArguments("Regressor", "has more than one [Forward] method"));
    }

    [TestMethod]
    public async Task ForwardNotReturningTensorIsReportedAtTheMethodName()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Linear output = new(16, 16);

                [Forward]
                public void {|#0:Forward|}([Shape(8, 16)] Tensor x) => output.Forward(x);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0006").WithLocation(0).WithArguments(
            "Regressor", "has a [Forward] method that is not an instance method returning Tensor"));
    }

    [TestMethod]
    public async Task ForwardParameterThatIsNotATensorIsReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Linear output = new(16, 16);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x, float {|#0:scale|}) => output.Forward(x);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0006").WithLocation(0).WithArguments(
            "Regressor", "has a [Forward] parameter 'scale' that is not a Tensor"));
    }

    [TestMethod]
    public async Task LayerClassWithoutForwardIsReportedAtTheLayerName()
    {
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
            public sealed class {|#0:Block|}
            {
                [Layer] private readonly Linear output = new(16, 16);

                public Tensor Forward(Tensor x) => output.Forward(x);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0006").WithLocation(0).WithArguments("Block", "has no [Forward] method"));
    }

    [TestMethod]
    public async Task ForwardReturningTokensIsReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Echo
            {
                [Forward]
                public Tensor {|#0:Forward|}([Tokens(8)] Tensor ids) => ids;
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0006").WithLocation(0).WithArguments(
            "Echo", "must return a real-valued tensor (a loss or activations), not tokens"));
    }
}
