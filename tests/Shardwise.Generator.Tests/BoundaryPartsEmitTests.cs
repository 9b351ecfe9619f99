using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// Whether a stage boundary may cross in parts (pipe_partitioned): the residual stream of a Megatron model is the same
/// on every tensor rank, so the emitted StagePlan leaves <c>BoundaryDiffersAcrossTensorRanks</c> false; a cut pinned
/// between a column-parallel and a row-parallel Linear passes a column-split activation, different on each rank, and
/// both stages of that cut are marked.
/// </summary>
[TestClass]
public sealed class BoundaryPartsEmitTests
{
    private static string Generate(string stageStarts) => GeneratorHarness.Run(("Net.cs", $$"""
        using Shardwise;

        namespace Demo;

        [Model(Pipeline = 2, Tensor = 2, StageStarts = new[] { "{{stageStarts}}" })]
        public partial class Net
        {
            [Layer] private readonly Embedding tokens = new(16, 8);
            [Layer] private readonly LayerNorm norm = new(8);
            [Layer, Shard(ShardKind.Column)] private readonly Linear up = new(8, 16);
            [Layer, Shard(ShardKind.Row)] private readonly Linear down = new(16, 8);
            [Layer] private readonly LayerNorm finalNorm = new(8);

            [Forward]
            public Tensor Forward([Tokens(4)] Tensor ids, [Tokens(4)] Tensor labels)
            {
                var h = Activations.Gelu(up.Forward(norm.Forward(tokens.Forward(ids))));
                return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(down.Forward(h))), labels);
            }
        }
        """)).Sources.Single(s => s.Key.EndsWith("Net.g.cs", StringComparison.Ordinal)).Value;

    [TestMethod]
    public void OnlyACutThroughASplitActivationIsMarked()
    {
        string throughSplit = Generate("down"), afterSum = Generate("finalNorm");
        Assert.AreEqual(2, throughSplit.Split("BoundaryDiffersAcrossTensorRanks = true").Length - 1,
            "both stages of a cut passing the column-split GeLU output send or receive it whole");
        Assert.IsFalse(afterSum.Contains("BoundaryDiffersAcrossTensorRanks", StringComparison.Ordinal),
            "after the row-parallel sum every rank holds the same activation: it may cross in parts");
    }
}
