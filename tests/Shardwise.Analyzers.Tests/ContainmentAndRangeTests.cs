using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

/// <summary>Checks added for gaps found while testing: enclosing types, repeat counts, and position tables.</summary>
[TestClass]
public sealed class ContainmentAndRangeTests
{
    [TestMethod]
    public async Task ModelNestedInANonPartialTypeIsReportedAtTheOuterType()
    {
        const string source = """
            using Shardwise;

            public static class {|#0:Outer|}
            {
                [Model]
                public partial class Classifier
                {
                    [Layer] private readonly Linear output = new(16, 5);

                    [Forward]
                    public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
                        => Loss.CrossEntropy(output.Forward(features), labels);
                }
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0001").WithLocation(0).WithArguments("Outer"));
    }

    [TestMethod]
    public async Task ModelNestedInAPartialTypeIsAccepted()
    {
        const string source = """
            using Shardwise;

            public static partial class Outer
            {
                [Model]
                public partial class Classifier
                {
                    [Layer] private readonly Linear output = new(16, 5);

                    [Forward]
                    public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
                        => Loss.CrossEntropy(output.Forward(features), labels);
                }
            }
            """;

        await VerifyAsync(source);
    }

    [TestMethod]
    public async Task ZeroRepeatCountIsReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Stack
            {
                [Layer] private readonly Linear[] layers = Layers.Repeat({|#0:0|}, () => new Linear(4, 4));

                [Forward]
                public Tensor Forward([Shape(3, 4)] Tensor x)
                {
                    foreach (var layer in layers)
                        x = layer.Forward(x);
                    return x;
                }
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0003").WithLocation(0).WithArguments("count", "layers", "the value is 0, a positive int is needed"));
    }

    [TestMethod]
    public async Task PositionTableShorterThanTheSequenceIsReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Positional
            {
                [Layer] private readonly Embedding positions = new(4, 8);

                [Forward]
                public Tensor Forward([Tokens(6)] Tensor ids) => {|#0:positions.Forward(ids.Positions())|};
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0004").WithLocation(0)
            .WithArguments("positions", "a table of at least 6 rows for positions 0..5", "4 rows"));
    }

    [TestMethod]
    public async Task PositionTableAsLongAsTheSequenceIsAccepted()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Positional
            {
                [Layer] private readonly Embedding positions = new(6, 8);

                [Forward]
                public Tensor Forward([Tokens(6)] Tensor ids) => positions.Forward(ids.Positions());
            }
            """;

        await VerifyAsync(source);
    }
}
