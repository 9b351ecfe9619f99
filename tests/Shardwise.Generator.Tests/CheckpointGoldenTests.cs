using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// TinyGpt with <c>[Checkpoint]</c> on its blocks (the example's source with the attribute added): the generated
/// program is checked in, and its backward re-runs each block's forward, with the block's parameters gathered once
/// (ZeRO-3 phase 1) at the recompute, before the block's backward.
/// </summary>
[TestClass]
public sealed class CheckpointGoldenTests
{
    private const string GoldenFile = "TinyGpt.checkpointed.g.cs.txt";

    private static string Generate()
    {
        var (sources, diagnostics) = GeneratorHarness.Run(GeneratorHarness.TinyGptWithBlocks("[Layer, LayerDrop, TokenDrop, Checkpoint] private readonly Block[] blocks"));
        Assert.AreEqual(0, diagnostics.Count, "generated code must compile cleanly: " + string.Join("\n", diagnostics));
        return sources["Shardwise.Examples.TinyGpt.g.cs"];
    }

    [TestMethod]
    public void CheckpointedTinyGptMatchesGolden()
    {
        string generated = Generate();
        var goldenPath = Path.Combine(GeneratorHarness.RepositoryRoot, "tests/Shardwise.Generator.Tests/Golden", GoldenFile);
        if (Environment.GetEnvironmentVariable("SHARDWISE_UPDATE_GOLDEN") == "1") File.WriteAllText(goldenPath, generated);
        Assert.IsTrue(File.Exists(goldenPath), "missing golden file " + goldenPath + " (run with SHARDWISE_UPDATE_GOLDEN=1)");
        Assert.AreEqual(File.ReadAllText(goldenPath).Replace("\r\n", "\n"), generated,
            "generated source differs from " + GoldenFile + "; if intended, rerun with SHARDWISE_UPDATE_GOLDEN=1 and review the diff");
    }

    [TestMethod]
    public void EveryBlockIsRecomputedOnceBeforeItsBackward()
    {
        string backward = BackwardBody(Generate());
        for (int block = 0; block < 4; block++)
        {
            int recompute = backward.IndexOf($"// blocks.{block} (recompute)", StringComparison.Ordinal);
            int firstBackward = FirstBackwardOf(backward, block);
            Assert.IsTrue(recompute >= 0, $"blocks.{block} is not recomputed");
            Assert.AreEqual(recompute, backward.LastIndexOf($"// blocks.{block} (recompute)", StringComparison.Ordinal), "one recompute per block");
            Assert.IsTrue(recompute < firstBackward, $"blocks.{block} is recomputed after its backward starts");
        }
        Assert.IsFalse(backward.Contains("// finalNorm (recompute)"), "only [Checkpoint] layers are recomputed");
    }

    [TestMethod]
    public void ZeroThreeGathersEachSlotOncePerPhaseInTheStaticOrder()
    {
        string generated = Generate();
        string backward = BackwardBody(generated);
        var needed = Regex.Matches(backward, @"ParametersNeeded\((\d+), 1\)").Select(m => int.Parse(m.Groups[1].Value)).ToList();
        var released = Regex.Matches(backward, @"ParametersReleased\((\d+), 1\)").Select(m => int.Parse(m.Groups[1].Value)).ToList();
        CollectionAssert.AllItemsAreUnique(needed, "a slot is gathered twice in backward");
        CollectionAssert.AreEquivalent(needed, released);

        // The gather order the runtime prefetches from lists the phase-1 requests exactly as the program makes them.
        var order = Regex.Match(generated, @"gatherOrderSlots: new int\[\] \{ ([^}]*) \}").Groups[1].Value.Split(", ").Select(int.Parse).ToList();
        var phases = Regex.Match(generated, @"gatherOrderPhases: new int\[\] \{ ([^}]*) \}").Groups[1].Value.Split(", ").Select(int.Parse).ToList();
        CollectionAssert.AreEqual(needed, order.Where((_, i) => phases[i] == 1).ToList());

        // blocks.3's parameters are gathered by its recompute, not by its backward steps.
        int recompute = backward.IndexOf("// blocks.3 (recompute)", StringComparison.Ordinal);
        int firstBackward = FirstBackwardOf(backward, 3);
        StringAssert.Contains(backward.Substring(recompute, firstBackward - recompute), "ParametersNeeded(");
        StringAssert.Contains(backward.Substring(recompute, firstBackward - recompute), "// blocks.3.attentionNorm.weight");
    }

    /// <summary>Where the first backward step of block <paramref name="block"/> (or of a layer inside it) begins.</summary>
    private static int FirstBackwardOf(string backward, int block)
    {
        var match = Regex.Match(backward, $@"// blocks\.{block}(\.[\w.]+)? \(backward\)");
        Assert.IsTrue(match.Success, $"no backward of blocks.{block}");
        return match.Index;
    }

    private static string BackwardBody(string generated)
    {
        int start = generated.IndexOf("public override void Backward(T scale)", StringComparison.Ordinal);
        Assert.IsTrue(start >= 0, "no Backward method");
        return generated.Substring(start);
    }
}
