using System;
using System.Linq;
using System.Text.RegularExpressions;
using Shardwise.Generator.Model;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// <c>[Checkpoint(PartitionInputs = true)]</c> (DeepSpeed's partition_activations) on GPT-2 124M (examples/Gpt2Small)
/// split Megatron-style over two tensor ranks: each rank's program keeps half of every block input between forward and
/// backward, in a part buffer of its own, and all-gathers it back right before the block's recompute; its activation
/// arena is smaller than with the inputs kept whole. The whole model (one tensor rank) keeps them whole.
/// </summary>
[TestClass]
public sealed class PartitionedCheckpointEmitTests
{
    private static string Generate(string? checkpoint, string contract = "[Layer, Shard(ShardKind.Row)] private readonly Linear contract;")
    {
        var example = GeneratorHarness.Example("examples/Gpt2Small/Gpt2Small.cs");
        string text = example.Text;
        foreach (var (from, to) in new[]
                 {
                     ("[Model]", "[Model(Tensor = 2)]"),
                     ("[Layer] private readonly Gpt2Block[] blocks", checkpoint is null ? "[Layer] private readonly Gpt2Block[] blocks" : $"[Layer, {checkpoint}] private readonly Gpt2Block[] blocks"),
                     ("[Layer] private readonly CausalSelfAttention attention;", "[Layer, Shard(ShardKind.Column)] private readonly CausalSelfAttention attention;"),
                     ("[Layer] private readonly Linear expand;", "[Layer, Shard(ShardKind.Column)] private readonly Linear expand;"),
                     ("[Layer] private readonly Linear contract;", contract),
                 })
        {
            Assert.IsTrue(text.Contains(from, StringComparison.Ordinal), "the Gpt2Small example no longer has " + from);
            text = text.Replace(from, to, StringComparison.Ordinal);
        }
        var (sources, diagnostics) = GeneratorHarness.Run((example.Path, text));
        Assert.AreEqual(0, diagnostics.Count, "generated code must compile cleanly: " + string.Join("\n", diagnostics));
        return string.Join("\n", sources.Where(s => s.Key.Contains("Gpt2Small", StringComparison.Ordinal)).OrderBy(s => s.Key).Select(s => "//// " + s.Key + "\n" + s.Value));
    }

    private static long[] Arenas(string generated)
        => Regex.Matches(generated, @"arenaElementsPerSample: (\d+)L").Select(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    [TestMethod]
    public void EachRankKeepsHalfOfEveryBlockInputAndTheRanksGatherItBeforeItsRecompute()
    {
        string partitioned = Generate("Checkpoint(PartitionInputs = true)"), whole = Generate("Checkpoint");
        // The embedding sum and blocks 0–10's outputs: the inputs of the twelve blocks (the last block's output is the final norm's input).
        var kept = Regex.Matches(partitioned, @"TensorParallelKeepPart\((\w+), (\w+)\);").Select(m => (Value: m.Groups[1].Value, Part: m.Groups[2].Value)).ToList();
        var gathered = Regex.Matches(partitioned, @"TensorParallelGatherParts\((\w+), (\w+)\);").Select(m => (Value: m.Groups[2].Value, Part: m.Groups[1].Value)).ToList();
        Assert.AreEqual(12, kept.Count, string.Join("\n", kept));
        CollectionAssert.AreEquivalent(kept, gathered, "every part kept in forward is gathered back once, into the value it came from");
        // The tensor rank's program follows the whole model's in the generated file: its backward is the one after the first part kept.
        int backward = partitioned.IndexOf("public override void Backward(", partitioned.IndexOf("TensorParallelKeepPart(", StringComparison.Ordinal), StringComparison.Ordinal);
        for (int block = 0; block < 12; block++)
        {
            int recompute = partitioned.IndexOf($"// blocks.{block} (recompute)", backward, StringComparison.Ordinal);
            Assert.IsTrue(recompute > 0, $"blocks.{block} is not recomputed");
            string before = partitioned.Substring(backward, recompute - backward);
            int gather = before.LastIndexOf("TensorParallelGatherParts(", StringComparison.Ordinal);
            Assert.IsTrue(gather >= 0 && !before.Substring(gather).Contains("(backward)", StringComparison.Ordinal),
                $"blocks.{block}'s input is not gathered right before its recompute:\n{(gather >= 0 ? before.Substring(gather) : before.Substring(Math.Max(0, before.Length - 2000)))}");
            string value = Regex.Match(before.Substring(gather), @"TensorParallelGatherParts\(\w+, (\w+)\)").Groups[1].Value;
            string firstCall = partitioned.Substring(recompute).Split('\n').First(line => line.TrimStart().StartsWith("Ops.", StringComparison.Ordinal));
            StringAssert.Contains(firstCall, value, $"blocks.{block}'s recompute does not start from the gathered input");
        }
        Assert.IsFalse(whole.Contains("TensorParallelKeepPart", StringComparison.Ordinal));

        // Generated first: the whole model (one tensor rank, inputs whole either way), then the tensor rank's program.
        long[] withParts = Arenas(partitioned), withWholeInputs = Arenas(whole);
        Console.WriteLine($"GPT-2 124M over 2 tensor ranks, blocks checkpointed: rank arena {withWholeInputs[1]:N0} elements per sample with whole inputs, {withParts[1]:N0} with parts");
        Assert.AreEqual(withWholeInputs[0], withParts[0], "the whole model keeps its checkpointed inputs whole");
        Assert.AreEqual(withWholeInputs[1] - 12 * 1024 * 768 / 2, withParts[1],
            "at the arena's peak (the head and the loss after forward) every rank holds half of the twelve inputs instead of all of them");
    }

    /// <summary>
    /// Which values a tensor rank's program holds differently from the other ranks: the column-split ones (the attention's
    /// qkv and core, the GeLU input and output) and the row-parallel partial sums differ; the residual stream, the norms'
    /// outputs and the summed outputs do not. Only the latter can be kept in parts: a block input marked as differing
    /// stays whole.
    /// </summary>
    [TestMethod]
    public void OnlyValuesTheSameOnEveryTensorRankAreKeptInParts()
    {
        var example = GeneratorHarness.Example("examples/Gpt2Small/Gpt2Small.cs");
        string text = example.Text.Replace("[Model]", "[Model(Tensor = 2)]", StringComparison.Ordinal)
            .Replace("[Layer] private readonly Gpt2Block[] blocks", "[Layer, Checkpoint(PartitionInputs = true)] private readonly Gpt2Block[] blocks", StringComparison.Ordinal)
            .Replace("[Layer] private readonly CausalSelfAttention attention;", "[Layer, Shard(ShardKind.Column)] private readonly CausalSelfAttention attention;", StringComparison.Ordinal)
            .Replace("[Layer] private readonly Linear expand;", "[Layer, Shard(ShardKind.Column)] private readonly Linear expand;", StringComparison.Ordinal)
            .Replace("[Layer] private readonly Linear contract;", "[Layer, Shard(ShardKind.Row)] private readonly Linear contract;", StringComparison.Ordinal);
        var compilation = GeneratorHarness.Compile((example.Path, text));
        var symbol = compilation.GetTypeByMetadataName("Shardwise.Examples.Gpt2Small")!;
        var model = Shardwise.Generator.Parsing.ModelParser.Parse(symbol, compilation, System.Threading.CancellationToken.None).Model!;
        var plan = Shardwise.Generator.Planning.ProgramPlanner.Plan(model)!;
        var rank = plan.Partition!.Stages[0].Program;
        var values = rank.Graph.Values;
        string[] Names(bool differs) => values.Where(v => v.DiffersAcrossTensorRanks == differs && v.Name.StartsWith("blocks.0.", StringComparison.Ordinal)).Select(v => v.Name).ToArray();
        Console.WriteLine("differ: " + string.Join(", ", Names(true)));
        Console.WriteLine("same:   " + string.Join(", ", Names(false)));
        foreach (string name in new[] { "blocks.0.attention.qkv.out", "blocks.0.attention.core", "blocks.0.expand.out", "blocks.0.contract.partial" })
            Assert.IsTrue(values.Single(v => v.Name == name).DiffersAcrossTensorRanks, name + " differs between the ranks");
        foreach (string name in new[] { "blocks.0.attentionNorm.out", "blocks.0.attention.projection.out", "blocks.0.mlpNorm.out", "blocks.0.contract.out" })
            Assert.IsFalse(values.Single(v => v.Name == name).DiffersAcrossTensorRanks, name + " is the same on every rank");

        var partitioned = rank.Checkpoints.PartitionedValues;
        Assert.AreEqual(12, partitioned.Count);
        Assert.IsTrue(partitioned.All(v => !values[v].DiffersAcrossTensorRanks));
        // The same program with the first block's input marked as differing: it stays whole, the others are still kept in parts.
        int first = partitioned[0];
        var marked = rank.Graph with { Values = values.Select(v => v.Id == first ? v with { DiffersAcrossTensorRanks = true } : v).ToEquatableArray() };
        var replanned = Shardwise.Generator.Planning.CheckpointPlanner.Plan(marked, model.Root, rank.Backward, tensorDegree: 2);
        CollectionAssert.AreEqual(partitioned.Skip(1).ToArray(), replanned.PartitionedValues.ToArray());
        Assert.AreEqual(0, Shardwise.Generator.Planning.CheckpointPlanner.Plan(rank.Graph, model.Root, rank.Backward, tensorDegree: 1).PartitionedValues.Count,
            "a program for one tensor rank keeps its inputs whole");
    }
}
