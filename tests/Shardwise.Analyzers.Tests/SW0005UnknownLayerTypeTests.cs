using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0005UnknownLayerTypeTests
{
    private static string ModelWithExtraField(string field) => $$"""
        using Shardwise;

        [Model]
        public partial class Regressor
        {
            [Layer] private readonly Linear output = new(16, 16);
            {{field}}

            [Forward]
            public Tensor Forward([Shape(8, 16)] Tensor x) => output.Forward(x);
        }

        [Layer]
        public sealed class Identity
        {
            [Forward]
            public Tensor Forward(Tensor x) => x;
        }

        public sealed class Helper
        {
            public Tensor Forward(Tensor x) => x;
        }
        """;

    [TestMethod]
    public async Task LayerClassMarkedLayerIsAccepted()
    {
        await VerifyAsync(ModelWithExtraField("[Layer] private readonly Identity identity = new();"));
    }

    [TestMethod]
    public async Task FieldWithoutLayerAttributeIsIgnored()
    {
        // Only [Layer] members are part of the model; other fields are the user's business.
        await VerifyAsync(ModelWithExtraField("private readonly string name = \"x\";"));
    }

    [TestMethod]
    public async Task StringMemberIsReportedAtItsName()
    {
        await VerifyAsync(
            ModelWithExtraField("[Layer] private readonly string {|#0:name|} = \"x\";"),
            Diagnostic("SW0005").WithLocation(0).WithArguments("name", "string"));
    }

    [TestMethod]
    public async Task ClassWithoutLayerAttributeIsReported()
    {
        await VerifyAsync(
            ModelWithExtraField("[Layer] private readonly Helper {|#0:helper|} = new();"),
            Diagnostic("SW0005").WithLocation(0).WithArguments("helper", "Helper"));
    }

    [TestMethod]
    public async Task ArrayOfAClassWithoutLayerAttributeIsReported()
    {
        await VerifyAsync(
            ModelWithExtraField("[Layer] private readonly Helper[] {|#0:helpers|} = Layers.Repeat(2, () => new Helper());"),
            Diagnostic("SW0005").WithLocation(0).WithArguments("helpers", "Helper[]"));
    }
}
