using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0003NonConstantDimensionTests
{
    /// <summary>A model whose only layer is declared by <paramref name="layerField"/>: a Linear named 'output' taking 16 features.</summary>
    private static string ModelWithLayer(string layerField) => $$"""
        using System;
        using Shardwise;

        [Model]
        public partial class Classifier
        {
            public const int Features = 16;
            public static int MutableFeatures = 16;

            {{layerField}}

            [Forward]
            public Tensor Forward([Shape(8, 16)] Tensor features, [Tokens(8)] Tensor labels)
                => Loss.CrossEntropy(output.Forward(features), labels);
        }
        """;

    [TestMethod]
    public async Task ConstantsAndArithmeticOnThemAreAccepted()
    {
        await VerifyAsync(ModelWithLayer("[Layer] private readonly Linear output = new(Features, (Features + 4) / 4);"));
    }

    [TestMethod]
    public async Task RuntimeValueIsReportedAtTheArgument()
    {
        await VerifyAsync(
            ModelWithLayer("[Layer] private readonly Linear output = new({|#0:Environment.ProcessorCount|}, 5);"),
            Diagnostic("SW0003").WithLocation(0).WithArguments(
                "inFeatures", "output", "'Environment.ProcessorCount' is not a constant or a constructor parameter"));
    }

    [TestMethod]
    public async Task StaticFieldThatIsNotConstIsReported()
    {
        await VerifyAsync(
            ModelWithLayer("[Layer] private readonly Linear output = new(Features, {|#0:MutableFeatures / 4|});"),
            Diagnostic("SW0003").WithLocation(0).WithArguments(
                "outFeatures", "output", "'MutableFeatures' is not a constant or a constructor parameter"));
    }

    [TestMethod]
    public async Task ZeroDimensionIsReportedAtTheConstruction()
    {
        await VerifyAsync(
            ModelWithLayer("[Layer] private readonly Linear output = {|#0:new(Features, 0)|};"),
            Diagnostic("SW0003").WithLocation(0).WithArguments(
                "outFeatures", "output", "the value is 0, a positive int is needed"));
    }

    [TestMethod]
    public async Task NonConstantRepeatCountIsReported()
    {
        const string source = """
            using System;
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Linear[] layers = Layers.Repeat({|#0:Environment.ProcessorCount|}, () => new Linear(16, 16));

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x)
                {
                    foreach (var layer in layers) x = layer.Forward(x);
                    return x;
                }
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0003").WithLocation(0).WithArguments(
            "count", "layers", "'Environment.ProcessorCount' is not a constant or a constructor parameter"));
    }

    [TestMethod]
    public async Task UserLayerArgumentFlowsIntoItsLayersAsAConstant()
    {
        const string source = """
            using System;
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Widen widen = new({|#0:Environment.ProcessorCount|});

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x) => widen.Forward(x);
            }

            [Layer]
            public sealed class Widen(int factor)
            {
                [Layer] private readonly Linear up = new(16, 16 * factor);

                [Forward]
                public Tensor Forward(Tensor x) => up.Forward(x);
            }
            """;

        // The user layer's own argument is where the non-constant value enters, so that is where it is reported.
        await VerifyAsync(source, Diagnostic("SW0003").WithLocation(0).WithArguments(
            "factor", "widen", "'Environment.ProcessorCount' is not a constant or a constructor parameter"));
    }
}
