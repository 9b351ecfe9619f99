using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0008UnsupportedLayerConstructionTests
{
    private static string ModelWithLayer(string layerField, string constructorBody = "") => $$"""
        using Shardwise;

        [Model]
        public partial class Regressor
        {
            {{layerField}}

            public Regressor()
            {
                {{constructorBody}}
            }

            [Forward]
            public Tensor Forward([Shape(8, 16)] Tensor x) => output.Forward(x);

            private static Linear MakeLinear() => new(16, 16);
        }
        """;

    [TestMethod]
    public async Task ConstructorCallInTheInitializerIsAccepted()
    {
        await VerifyAsync(ModelWithLayer("[Layer] private readonly Linear output = new Linear(16, 16);"));
    }

    [TestMethod]
    public async Task ConstructorCallInTheConstructorIsAccepted()
    {
        await VerifyAsync(ModelWithLayer("[Layer] private readonly Linear output;", "output = new Linear(16, 16);"));
    }

    [TestMethod]
    public async Task FactoryMethodIsReportedAtTheCall()
    {
        await VerifyAsync(
            ModelWithLayer("[Layer] private readonly Linear output = {|#0:MakeLinear()|};"),
            Diagnostic("SW0008").WithLocation(0).WithArguments("output", "Linear", "'MakeLinear()' is not a constructor call"));
    }

    [TestMethod]
    public async Task FactoryMethodInTheConstructorIsReportedAtTheCall()
    {
        await VerifyAsync(
            ModelWithLayer("[Layer] private readonly Linear output;", "output = {|#0:MakeLinear()|};"),
            Diagnostic("SW0008").WithLocation(0).WithArguments("output", "Linear", "'MakeLinear()' is not a constructor call"));
    }

    [TestMethod]
    public async Task LayerNeverAssignedIsReportedAtTheField()
    {
        await VerifyAsync(
            ModelWithLayer("[Layer] private readonly Linear {|#0:output|};"),
            Diagnostic("SW0008").WithLocation(0).WithArguments("output", "Linear", "no initializer or constructor assignment was found"));
    }

    [TestMethod]
    public async Task RepeatWithABlockLambdaIsReported()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Linear[] layers = {|#0:Layers.Repeat(2, () => { return new Linear(16, 16); })|};

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x)
                {
                    foreach (var layer in layers) x = layer.Forward(x);
                    return x;
                }
            }
            """;

        await VerifyAsync(source, Diagnostic("SW0008").WithLocation(0).WithArguments(
            "layers", "Linear", "Layers.Repeat needs a count and a lambda '() => new T(...)'"));
    }

    [TestMethod]
    public async Task RepeatWithAnExpressionLambdaIsAccepted()
    {
        const string source = """
            using Shardwise;

            [Model]
            public partial class Regressor
            {
                [Layer] private readonly Linear[] layers = Layers.Repeat(2, () => new Linear(16, 16));

                [Forward]
                public Tensor Forward([Shape(8, 16)] Tensor x)
                {
                    foreach (var layer in layers) x = layer.Forward(x);
                    return x;
                }
            }
            """;

        await VerifyAsync(source);
    }
}
