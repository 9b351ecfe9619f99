using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0022CheckpointInputsNotPartitionedTests
{
    private static string Model(string model, string checkpoint, string shard = "") => $$"""
        using Shardwise;

        [{{model}}]
        public partial class Net
        {
            [Layer] private readonly Embedding tokens = new(16, 8);
            [Layer, {|#0:{{checkpoint}}|}] private readonly Block[] blocks = Layers.Repeat(2, () => new Block());
            [Layer] private readonly LayerNorm finalNorm = new(8);

            [Forward]
            public Tensor Forward([Tokens(4)] Tensor ids, [Tokens(4)] Tensor labels)
            {
                var x = tokens.Forward(ids);
                foreach (var block in blocks)
                    x = block.Forward(x);
                return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), labels);
            }
        }

        [Layer]
        public sealed class Block
        {
            [Layer] private readonly LayerNorm norm = new(8);
            [Layer{{shard}}] private readonly CausalSelfAttention attention = new(8, 2);

            [Forward]
            public Tensor Forward(Tensor x) => x + attention.Forward(norm.Forward(x));
        }
        """;

    [TestMethod]
    public async Task PartitionedInputsOnTensorRanksAreAccepted()
    {
        await VerifyAsync(Model("Model(Tensor = 2)", "Checkpoint(PartitionInputs = true)", shard: ", Shard(ShardKind.Column)"));
        await VerifyAsync(Model("Model", "Checkpoint(InputsOnHost = true)"));
    }

    [TestMethod]
    public async Task PartitionedInputsOnOneTensorRankAreReported()
    {
        await VerifyAsync(Model("Model", "Checkpoint(PartitionInputs = true)"),
            Diagnostic("SW0022").WithLocation(0).WithArguments("blocks", "Net",
                "the model is planned for one tensor rank (Tensor = 1): there is nothing to split them over"));
    }

    [TestMethod]
    public async Task PartitionedInputsWithInputsOnHostAreReported()
    {
        await VerifyAsync(Model("Model(Tensor = 2)", "Checkpoint(PartitionInputs = true, InputsOnHost = true)", shard: ", Shard(ShardKind.Column)"),
            Diagnostic("SW0022").WithLocation(0).WithArguments("blocks", "Net",
                "InputsOnHost = true moves them to host memory instead (choose one of the two)"));
    }
}
