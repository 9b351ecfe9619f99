using System;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// Where the residual norm fusion (an Add and the LayerNorm right after it as one <c>Ops.AddLayerNorm</c>) applies and
/// where it must not: an op between the two (reading the sum or not), a LayerNorm of another value, a sum that is the
/// program's (here a pipeline stage's) output, and an Add and LayerNorm in different checkpoint segments. The backward
/// program keeps LayerNormBackward for every norm whatever was fused.
/// </summary>
[TestClass]
public sealed class ResidualNormFusionTests
{
    private const string Source = """
        namespace Shardwise.Generator.Tests.Models;

        [Model]
        public partial class NormCases
        {
            [Layer] private readonly Linear first = new(8, 8);
            [Layer] private readonly Linear second = new(8, 8);
            [Layer] private readonly LayerNorm readBetween = new(8);
            [Layer] private readonly LayerNorm otherValue = new(8);
            [Layer] private readonly LayerNorm opBetween = new(8);
            [Layer] private readonly LayerNorm fused = new(8);
            [Layer] private readonly Linear head = new(8, 5, bias: false);

            [Forward]
            public Tensor Forward([Shape(4, 8)] Tensor x, [Tokens(4)] Tensor labels)
            {
                var s1 = x + first.Forward(x);
                var side = second.Forward(s1);      // reads the sum between the add and its norm
                var n1 = readBetween.Forward(s1);
                var s2 = n1 + side;
                var n2 = otherValue.Forward(side);  // right after the add, but of another value
                var s3 = s2 + n2;
                var g = Activations.Gelu(x);        // between the add and its norm, not reading the sum
                var n3 = opBetween.Forward(s3);
                var s4 = n3 + g;
                var n4 = fused.Forward(s4);         // the one pair that fuses
                return Loss.CrossEntropy(head.Forward(n4), labels);
            }
        }
        """;

    private static int Count(string text, string call) => Regex.Matches(text, Regex.Escape(call)).Count;

    [TestMethod]
    public void OnlyAnAddWhoseSumTheNextOpNormalisesIsFused()
    {
        var (sources, diagnostics) = GeneratorHarness.Run(("NormCases.cs", Source));
        Assert.AreEqual(0, diagnostics.Count, "generated code must compile cleanly: " + string.Join("\n", diagnostics));
        string generated = sources["Shardwise.Generator.Tests.Models.NormCases.g.cs"];
        string forward = Body(generated, "Forward(");

        Assert.AreEqual(1, Count(forward, "Ops.AddLayerNorm("), forward);
        var fusedCall = Regex.Match(forward, @"Ops\.AddLayerNorm\((\w+), _g\w*, (\w+), P_fused_weight, P_fused_bias, _fused_out, _fused_mean, _fused_rstd, Batch \* 4, 8\);");
        Assert.IsTrue(fusedCall.Success, "s4 = n3 + g, then fused's norm of it: " + forward);
        Assert.AreEqual("_opBetween_out", fusedCall.Groups[1].Value);
        Assert.AreEqual(3, Count(forward, "Ops.Add("), "the three adds whose norm does not come right after stay");
        foreach (string norm in new[] { "readBetween", "otherValue", "opBetween" })
            Assert.AreEqual(1, Count(forward, $"P_{norm}_weight, P_{norm}_bias, _{norm}_out"), norm);
        Assert.AreEqual(3, Count(forward, "Ops.LayerNorm("), "three norms stay unfused");
        Assert.AreEqual(1, Count(forward, "// residual add: computed with the LayerNorm after it (Ops.AddLayerNorm)"));

        // Backward is unchanged: every norm's backward, and the fused add's gradient (aliased or copied) still flows.
        string backward = Body(generated, "Backward(");
        Assert.AreEqual(4, Count(backward, "Ops.LayerNormBackward("));
        Assert.AreEqual(0, Count(backward, "AddLayerNorm"));
        StringAssert.Contains(generated, "residual norms: 1 residual add is computed by the LayerNorm right after (Ops.AddLayerNorm)");
    }

    [TestMethod]
    public void EveryResidualAddOfTinyGptRunsInsideTheNormAfterIt()
    {
        // TinyGpt's blocks without [TokenDrop] (whose gather and scatter sit between a block's last add and the next norm).
        var (sources, diagnostics) = GeneratorHarness.Run(GeneratorHarness.TinyGptWithBlocks("[Layer, LayerDrop] private readonly Block[] blocks"));
        Assert.AreEqual(0, diagnostics.Count, string.Join("\n", diagnostics));
        string forward = Body(sources["Shardwise.Examples.TinyGpt.g.cs"], "Forward(");

        // The embedding sum, two residual adds per block (4 blocks): each is read by the next norm.
        Assert.AreEqual(9, Count(forward, "Ops.AddLayerNorm("), forward);
        Assert.AreEqual(0, Count(forward, "Ops.Add("), "no separate add kernel before a norm");
        Assert.AreEqual(0, Count(forward, "Ops.LayerNorm("));
        StringAssert.Contains(forward, "Ops.AddLayerNorm(_blocks_0_sum8, _blocks_0_contract_out, _blocks_0_sum13, P_blocks_1_attentionNorm_weight, P_blocks_1_attentionNorm_bias, _blocks_1_attentionNorm_out, _blocks_1_attentionNorm_mean, _blocks_1_attentionNorm_rstd, Batch * 64, 128);");
    }

    [TestMethod]
    public void TokenDropBlocksFuseOnlyTheAddsInsideThem()
    {
        var (sources, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs"));
        Assert.AreEqual(0, diagnostics.Count, string.Join("\n", diagnostics));
        string forward = Body(sources["Shardwise.Examples.TinyGpt.g.cs"], "Forward(");

        // Each block's middle add runs in its second norm, on the block's kept rows; the embedding sum and each block's
        // last add are read by random-LTD's gather and scatter, not by a norm, so they stay adds.
        Assert.AreEqual(4, Count(forward, "Ops.AddLayerNorm("), forward);
        Assert.AreEqual(5, Count(forward, "Ops.Add("));
        Assert.AreEqual(5, Count(forward, "Ops.LayerNorm("), "each block's first norm and the final norm");
        StringAssert.Contains(forward, "P_blocks_1_mlpNorm_weight, P_blocks_1_mlpNorm_bias, _blocks_1_mlpNorm_out, _blocks_1_mlpNorm_mean, _blocks_1_mlpNorm_rstd, Batch * KeptTokens(1, 64), 128);");
        Assert.AreEqual(4, Count(forward, "Ops.GatherTokens("));
        Assert.AreEqual(4, Count(forward, "Ops.ScatterTokens("));
    }

    [TestMethod]
    public void AnAddAndANormInDifferentCheckpointSegmentsStaySeparate()
    {
        var (sources, diagnostics) = GeneratorHarness.Run(GeneratorHarness.TinyGptWithBlocks("[Layer, LayerDrop, Checkpoint] private readonly Block[] blocks"));
        Assert.AreEqual(0, diagnostics.Count, string.Join("\n", diagnostics));
        string generated = sources["Shardwise.Examples.TinyGpt.g.cs"];
        string forward = Body(generated, "Forward(");

        // A block's last add makes its output (kept, not recomputed) while the next block's first norm is recomputed with
        // that block: those stay apart, as does the embedding sum before blocks.0. Inside a block both are recomputed;
        // the last block's output and the final norm are both outside any segment.
        Assert.AreEqual(5, Count(forward, "Ops.AddLayerNorm("), forward);
        Assert.AreEqual(4, Count(forward, "Ops.Add("));
        StringAssert.Contains(forward, "Ops.Add(_blocks_0_sum8, _blocks_0_contract_out, _blocks_0_sum13, Batch * 8192L);");
        StringAssert.Contains(forward, "Ops.LayerNorm(_blocks_0_sum13, P_blocks_1_attentionNorm_weight, ");
        StringAssert.Contains(forward, "Ops.AddLayerNorm(_blocks_3_sum38, _blocks_3_contract_out, _blocks_3_sum43, P_finalNorm_weight, ");

        // Each block's recompute re-runs its inner pair fused, and re-runs no add outside it.
        string backward = Body(generated, "Backward(");
        for (int block = 0; block < 4; block++)
            StringAssert.Contains(backward, $"P_blocks_{block}_mlpNorm_weight, P_blocks_{block}_mlpNorm_bias, _blocks_{block}_mlpNorm_out");
        Assert.AreEqual(4, Count(backward, "Ops.AddLayerNorm("), "one fused pair per recomputed block");
        Assert.AreEqual(0, Count(backward, "Ops.Add("), "a block's last add is not recomputed");
    }

    [TestMethod]
    public void AStageWhoseOutputIsTheSumKeepsItsAdd()
    {
        var (sources, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Example("tests/Shardwise.Models.Tests/ShardedGpts.cs"));
        Assert.AreEqual(0, diagnostics.Count, string.Join("\n", diagnostics));
        string generated = sources["Shardwise.Models.Tests.HybridGpt.g.cs"];
        int stage1 = generated.IndexOf("class Stage1<T>", StringComparison.Ordinal);
        Assert.IsTrue(stage1 > 0);
        string stage0 = generated.Substring(generated.IndexOf("class Stage0<T>", StringComparison.Ordinal), stage1 - generated.IndexOf("class Stage0<T>", StringComparison.Ordinal));

        // Stage 0 ends on blocks.1's last add (its output, sent to stage 1), which stage 1 normalises first.
        StringAssert.Contains(Body(stage0, "Forward("), "Ops.Add(_blocks_1_sum18, _blocks_1_down_out, _blocks_1_sum23, Batch * 48L);");
        StringAssert.Contains(Body(generated.Substring(stage1), "Forward("), "Ops.LayerNorm(_blocks_1_sum23, P_blocks_2_norm1_weight, ");
        // The whole (unpartitioned) program fuses that pair.
        StringAssert.Contains(Body(generated, "Forward("), "Ops.AddLayerNorm(_blocks_1_sum18, _blocks_1_down_out, _blocks_1_sum23, P_blocks_2_norm1_weight, ");
    }

    /// <summary>The body of the first method whose signature contains <paramref name="name"/>, up to its closing brace.</summary>
    private static string Body(string source, string name)
    {
        var match = Regex.Match(source, @"public [^\n]*" + Regex.Escape(name) + @"[^\n]*\n\s*\{");
        Assert.IsTrue(match.Success, "no method " + name);
        int start = match.Index + match.Length;
        int end = source.IndexOf("\n        }\n", start, StringComparison.Ordinal);
        Assert.IsTrue(end > start, "no end of " + name);
        return source.Substring(start, end - start);
    }
}
