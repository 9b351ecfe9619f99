using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// Where the epilogue fusion planner must not fuse (TinyGpt's and MlpClassifier's goldens show where it does): a
/// Linear output that something besides the GeLU reads keeps Linear + Gelu, and a GeLU output that two Linears read
/// keeps both Linears' backward and the GeLU's (its gradient is a sum, which DGELU cannot add to).
/// </summary>
[TestClass]
public sealed class EpilogueFusionTests
{
    private const string Source = """
        namespace Shardwise.Generator.Tests.Models;

        [Model]
        public partial class FusionCases
        {
            [Layer] private readonly Linear shared = new(8, 8);
            [Layer] private readonly Linear expand = new(8, 16);
            [Layer] private readonly Linear left = new(16, 8);
            [Layer] private readonly Linear right = new(16, 8);
            [Layer] private readonly Linear head = new(8, 5, bias: false);

            [Forward]
            public Tensor Forward([Shape(4, 8)] Tensor x, [Tokens(4)] Tensor labels)
            {
                var pre = shared.Forward(x);
                var a = Activations.Gelu(pre) + pre;
                var g = Activations.Gelu(expand.Forward(a));
                var h = left.Forward(g) + right.Forward(g);
                return Loss.CrossEntropy(head.Forward(h), labels);
            }
        }
        """;

    [TestMethod]
    public void OnlyTheLinearWhoseOutputOnlyTheGeluReadsIsFused()
    {
        var (sources, diagnostics) = GeneratorHarness.Run(("FusionCases.cs", Source));
        Assert.AreEqual(0, diagnostics.Count, "generated code must compile cleanly: " + string.Join("\n", diagnostics));
        string generated = sources["Shardwise.Generator.Tests.Models.FusionCases.g.cs"];

        int Count(string call) => Regex.Matches(generated, Regex.Escape(call)).Count;
        Assert.AreEqual(1, Count("Ops.LinearGelu(_sum2, P_expand_weight, P_expand_bias, _expand_out, _gelu4, "), generated);
        Assert.AreEqual(1, Count("Ops.LinearGelu("), "only expand → GeLU is fused");
        Assert.AreEqual(1, Count("Ops.Gelu(_shared_out, "), "shared's output is also added to, so its GeLU stays");
        Assert.AreEqual(0, Count("Ops.GeluLinearBackward("), "g feeds two Linears: its gradient is summed");
        Assert.AreEqual(2, Count("Ops.GeluBackward("), "both GeLU backwards stay");
        StringAssert.Contains(generated, "Ops.LinearBackward(_gelu4, P_left_weight, _d_left_out, _d_gelu4, G_left_weight, G_left_bias, Batch * 4, 16, 8, accumulate: true);",
            "left's backward, just before the GeLU's, adds to g's gradient: DGELU could not");
        StringAssert.Contains(generated, "epilogue fusion: 1 Linear → GeLU forward as one call (Ops.LinearGelu), 0 GeLU backwards");
    }
}
