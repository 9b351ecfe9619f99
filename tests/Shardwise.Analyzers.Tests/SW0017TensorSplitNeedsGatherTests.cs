using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0017TensorSplitNeedsGatherTests
{
    private static string Mlp(string up, string down, string forward = "down.Forward(Activations.Gelu(up.Forward(norm.Forward(x))))") => $$"""
        using Shardwise;

        [Model(Tensor = 2)]
        public partial class Mlp
        {
            [Layer] private readonly Embedding tokens = new(16, 8);
            [Layer] private readonly LayerNorm norm = new(8);
            {{up}} private readonly Linear up = new(8, 32);
            {{down}} private readonly Linear down = new(32, 8);
            [Layer] private readonly Linear head = new(8, 16);

            [Forward]
            public Tensor Forward([Tokens(4)] Tensor ids, [Tokens(4)] Tensor labels)
            {
                var x = tokens.Forward(ids);
                x = x + {{forward}};
                return Loss.CrossEntropy(head.Forward(x), labels);
            }
        }
        """;

    [TestMethod]
    public async Task ColumnThenRowIsAccepted()
    {
        await VerifyAsync(Mlp("[Layer, Shard(ShardKind.Column)]", "[Layer, Shard(ShardKind.Row)]"));
    }

    [TestMethod]
    public async Task RowParallelWithoutColumnSplitInputIsReportedAtItsShardAttribute()
    {
        await VerifyAsync(Mlp("[Layer]", "[Layer, {|#0:Shard(ShardKind.Row)|}]"),
            Diagnostic("SW0017").WithLocation(0).WithArguments("down", "is row-parallel but its input is not column-split (Megatron would scatter it first)"));
    }

    [TestMethod]
    public async Task ColumnSplitOutputIntoAnUnshardedLayerIsReported()
    {
        // The column-split output of 'up' goes straight into the unsharded 'down': each rank holds only a part of it.
        await VerifyAsync(Mlp("[Layer, Shard(ShardKind.Column)]", "[Layer]"),
            Diagnostic("SW0017").WithSpan(9, 44, 9, 54).WithArguments("down", "is not sharded but its input is column-split (mark it [Shard(ShardKind.Row)])"));
    }

    [TestMethod]
    public async Task CodeFixMarksTheUnshardedLayerRowParallel()
    {
        string source = Mlp("[Layer, Shard(ShardKind.Column)]", "[Layer]");
        var (titles, fixedSource) = await CodeFixRunner.ApplyAsync(source, "SW0017", provider: new Shardwise.CodeFixes.ShardAttributeCodeFix());

        CollectionAssert.AreEqual(new[] { "Mark 'down' [Shard(ShardKind.Row)]" }, titles);
        Assert.AreEqual(Mlp("[Layer, Shard(ShardKind.Column)]", "[Layer, Shard(ShardKind.Row)]"), fixedSource);
        await VerifyAsync(fixedSource); // the fixed model is Megatron's pair: no diagnostic left
    }
}
