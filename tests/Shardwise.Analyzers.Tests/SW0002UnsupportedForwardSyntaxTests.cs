using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0002UnsupportedForwardSyntaxTests
{
    private const string StatementReason = "only 'var x = ...', 'x = ...', 'foreach' over a layer array and 'return' are compiled";
    private const string ExpressionReason = "only layer calls, tensor '+', Activations.*, Loss.* and tensor.Positions() are compiled";

    /// <summary>A valid model whose forward body is <paramref name="body"/>; x is [batch, 8, 16].</summary>
    private static string ModelWithForwardBody(string body) => $$"""
        using System;
        using Shardwise;

        [Model]
        public partial class Regressor
        {
            [Layer] private readonly Linear first = new(16, 16);
            [Layer] private readonly Linear second = new(16, 16);

            [Forward]
            public Tensor Forward([Shape(8, 16)] Tensor x)
            {
        {{body}}
            }

            private static Tensor Twice(Tensor x) => x + x;

            private Tensor Scale(Tensor x) => x + x;
        }
        """;

    [TestMethod]
    public async Task SupportedStatementsAreAccepted()
    {
        await VerifyAsync(ModelWithForwardBody("""
                    var h = first.Forward(x);
                    h = Activations.Gelu(h);
                    return second.Forward(h) + x;
            """));
    }

    [TestMethod]
    public async Task IfStatementIsReportedWithItsTextOnOneLine()
    {
        await VerifyAsync(
            ModelWithForwardBody("""
                    var h = first.Forward(x);
                    {|#0:if (DateTime.Now.Second > 30)
                    {
                        h = second.Forward(h);
                    }|}
                    return h;
            """),
            Diagnostic("SW0002").WithLocation(0).WithArguments(
                "if (DateTime.Now.Second > 30) { h = second.Forward(h); }", "Regressor", StatementReason));
    }

    [TestMethod]
    public async Task ForLoopIsReported()
    {
        await VerifyAsync(
            ModelWithForwardBody("""
                    var h = x;
                    {|#0:for (int i = 0; i < 2; i++) h = first.Forward(h);|}
                    return h;
            """),
            Diagnostic("SW0002").WithLocation(0).WithArguments(
                "for (int i = 0; i < 2; i++) h = first.Forward(h);", "Regressor", StatementReason));
    }

    [TestMethod]
    public async Task LambdaIsReported()
    {
        await VerifyAsync(
            ModelWithForwardBody("""
                    Func<Tensor, Tensor> layer = {|#0:h => first.Forward(h)|};
                    return layer(x);
            """),
            Diagnostic("SW0002").WithLocation(0).WithArguments("h => first.Forward(h)", "Regressor", ExpressionReason));
    }

    [TestMethod]
    public async Task CallToAnOrdinaryMethodIsReported()
    {
        await VerifyAsync(
            ModelWithForwardBody("""
                    return {|#0:Twice(first.Forward(x))|};
            """),
            Diagnostic("SW0002").WithLocation(0).WithArguments("Twice(first.Forward(x))", "Regressor", ExpressionReason));
    }

    [TestMethod]
    public async Task CallThroughThisIsReportedAsTheWholeCall()
    {
        await VerifyAsync(
            ModelWithForwardBody("""
                    return {|#0:this.Scale(first.Forward(x))|};
            """),
            Diagnostic("SW0002").WithLocation(0).WithArguments("this.Scale(first.Forward(x))", "Regressor", ExpressionReason));
    }

    [TestMethod]
    public async Task CallToAMethodOfAUserLayerOtherThanForwardIsReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Block block = new();

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x) => {|#0:block.Project(x)|};
            }

            [Layer]
            public sealed class Block
            {
                [Layer] private readonly Linear output = new(16, 16);

                [Forward]
                public Tensor Forward(Tensor x) => output.Forward(x);

                public Tensor Project(Tensor x) => output.Forward(x);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0002").WithLocation(0).WithArguments(
            "Project", "Regressor", "'block' (User) has no compiled method 'Project' taking 1 tensor(s)"));
    }

    [TestMethod]
    public async Task FieldWithoutLayerAttributeIsReportedWhereForwardUsesIt()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Linear output = new(16, 16);
                private readonly Linear spare = new(16, 16);

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x) => {|#0:spare|}.Forward(x);
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0002").WithLocation(0).WithArguments(
            "spare", "Regressor", "only [Layer] fields can be used in [Forward]"));
    }

    [TestMethod]
    public async Task StaticCallOutsideActivationsAndLossIsReported()
    {
        await VerifyAsync(
            ModelWithForwardBody("""
                    return {|#0:Regressor.Twice(first.Forward(x))|};
            """),
            Diagnostic("SW0002").WithLocation(0).WithArguments(
                "Regressor.Twice", "Regressor", "the compiled functions are Activations.Gelu(x) and Loss.CrossEntropy(logits, targets)"));
    }
}
