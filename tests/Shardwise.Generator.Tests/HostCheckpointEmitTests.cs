using System;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// TinyGpt with <c>[Checkpoint(InputsOnHost = true)]</c> on its blocks (which also carry [LayerDrop] and [TokenDrop]):
/// the generated program compiles cleanly, stashes each block's input once in forward, after the last forward call
/// that reads it, and restores it once in backward, before that block's recompute, into the same buffer at the same
/// host offset.
/// </summary>
[TestClass]
public sealed class HostCheckpointEmitTests
{
    private static string Generate()
    {
        var (sources, diagnostics) = GeneratorHarness.Run(GeneratorHarness.TinyGptWithBlocks(
            "[Layer, LayerDrop, TokenDrop, Checkpoint(InputsOnHost = true)] private readonly Block[] blocks"));
        Assert.AreEqual(0, diagnostics.Count, "generated code must compile cleanly: " + string.Join("\n", diagnostics));
        return sources["Shardwise.Examples.TinyGpt.g.cs"];
    }

    [TestMethod]
    public void EachBlockInputGoesToTheHostAfterForwardAndComesBackBeforeItsRecompute()
    {
        string generated = Generate();
        int backwardStart = generated.IndexOf("public override void Backward(T scale)", StringComparison.Ordinal);
        string forward = generated.Substring(0, backwardStart), backward = generated.Substring(backwardStart);
        var stashes = Regex.Matches(forward, @"Ops\.StashActivation\((\w+), HostStash\((\d+)L\)\)").Select(m => (Buffer: m.Groups[1].Value, Offset: m.Groups[2].Value)).ToList();
        var restores = Regex.Matches(generated, @"Ops\.RestoreActivation\(HostStash\((\d+)L\), (\w+)\)").Select(m => (Buffer: m.Groups[2].Value, Offset: m.Groups[1].Value)).ToList();
        Assert.AreEqual(4, stashes.Count, "one stash per block input:\n" + string.Join("\n", stashes));
        CollectionAssert.AreEquivalent(stashes, restores, "every stash is restored once, into its own buffer from its own offset");
        CollectionAssert.AllItemsAreUnique(stashes.Select(s => s.Offset).ToList());

        for (int block = 0; block < 4; block++)
        {
            // The wait for block b's input comes right before block b's recompute; its restore was issued earlier.
            int recompute = backward.IndexOf($"// blocks.{block} (recompute)", StringComparison.Ordinal);
            Assert.IsTrue(recompute > 0, $"blocks.{block} is not recomputed");
            string before = backward.Substring(0, recompute);
            int wait = before.LastIndexOf("Ops.WaitForRestore(HostStash(", StringComparison.Ordinal);
            Assert.IsTrue(wait >= 0 && !before.Substring(wait).Contains("(backward)"), $"blocks.{block}'s input is not awaited right before its recompute");
            string offset = Regex.Match(before.Substring(wait), @"HostStash\((\d+)L\)").Groups[1].Value;
            var restore = restores.Single(r => r.Offset == offset);
            int issued = generated.IndexOf($"Ops.RestoreActivation(HostStash({offset}L), {restore.Buffer});", StringComparison.Ordinal);
            int stashed = generated.IndexOf($"Ops.StashActivation({restore.Buffer}, HostStash({offset}L));", StringComparison.Ordinal);
            Assert.IsTrue(stashed < issued && issued < backwardStart + wait, $"blocks.{block}: stash, restore and wait out of order");
            // ... and the restored buffer is what the block's first recomputed call reads.
            string firstCall = backward.Substring(recompute).Split('\n').First(line => line.TrimStart().StartsWith("Ops.", StringComparison.Ordinal));
            StringAssert.Contains(firstCall, restore.Buffer, $"blocks.{block}'s recompute does not start from the restored input");
        }
        // Every stash whose memory is reused is awaited before the reuse, in forward or backward.
        Assert.IsTrue(Regex.Matches(generated, @"Ops\.WaitForStash\(").Count > 0, "the inputs' memory is reused, so some stash is awaited");
        StringAssert.Contains(generated, "checkpointed inputs in host memory: 4 tensors");
        StringAssert.Contains(generated, "hostElementsPerSample: ");
    }

    /// <summary>
    /// GPT-2 124M (examples/Gpt2Small) as it would be planned with its blocks checkpointed, with and without their
    /// inputs on the host: the plan report lines, printed for the docs. All twelve block inputs (the residual stream,
    /// [1024, 768] per sample each) leave the device, the last block's too: the final norm, the head and the loss run
    /// between its forward and its recompute.
    /// </summary>
    [TestMethod]
    public void Gpt2SmallReportsTheHostStoreAndTheSmallerArena()
    {
        string Report(string attribute)
        {
            var example = GeneratorHarness.Example("examples/Gpt2Small/Gpt2Small.cs");
            const string field = "[Layer] private readonly Gpt2Block[] blocks";
            Assert.IsTrue(example.Text.Contains(field), "the Gpt2Small example no longer declares " + field);
            var (sources, diagnostics) = GeneratorHarness.Run((example.Path, example.Text.Replace(field, $"[Layer, {attribute}] private readonly Gpt2Block[] blocks")));
            Assert.AreEqual(0, diagnostics.Count, string.Join("\n", diagnostics));
            return sources.Single(s => s.Key.EndsWith("Gpt2Small.g.cs", StringComparison.Ordinal)).Value;
        }
        string device = Report("Checkpoint"), host = Report("Checkpoint(InputsOnHost = true)");
        string Line(string source, string marker) => source.Split('\n').Single(l => l.Contains(marker, StringComparison.Ordinal)).Trim();
        long Arena(string source) => long.Parse(Regex.Match(source, @"arenaElementsPerSample: (\d+)L").Groups[1].Value);
        Console.WriteLine(Line(device, "activation checkpointing:"));
        Console.WriteLine(Line(host, "activation checkpointing:"));
        Console.WriteLine(Line(host, "checkpointed inputs in host memory:"));
        StringAssert.Contains(host, "checkpointed inputs in host memory: 12 tensors, " + (12L * 1024 * 768 * 4).ToString("N0", System.Globalization.CultureInfo.InvariantCulture) + " fp32 bytes per sample");
        Assert.IsTrue(Arena(host) < Arena(device), $"arena {Arena(host)} is not smaller than {Arena(device)}");
    }
}
