using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0020LayerCannotBeDroppedTests
{
    private static string Model(string blockForward) => $$"""
        using Shardwise;

        [Model]
        public partial class Net
        {
            [Layer] private readonly Embedding tokens = new(16, 8);
            [Layer, {|#0:LayerDrop|}] private readonly Block[] blocks = Layers.Repeat(2, () => new Block());
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
            [Layer] private readonly Linear up = new(8, 16);
            [Layer] private readonly Linear down = new(16, 8);

            [Forward]
            public Tensor Forward(Tensor x)
            {
                {{blockForward}}
            }
        }
        """;

    [TestMethod]
    public async Task PreNormResidualBlocksAreAccepted()
    {
        await VerifyAsync(Model("return x + down.Forward(Activations.Gelu(up.Forward(norm.Forward(x))));"));
        await VerifyAsync("using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs"));
    }

    [TestMethod]
    public async Task APostNormBlockIsReported()
    {
        // Skipping it would still normalise: it is not x + f(x).
        const string reason = "it does not end with a residual add (the forward is not x = x + f(x))";
        await VerifyAsync(Model("return norm.Forward(x + down.Forward(Activations.Gelu(up.Forward(x))));"),
            Diagnostic("SW0020").WithLocation(0).WithArguments("blocks.0", "Net", reason),
            Diagnostic("SW0020").WithLocation(0).WithArguments("blocks.1", "Net", reason));
    }

    [TestMethod]
    public async Task ABranchThatDoesNotEndInALinearIsReported()
    {
        // A kept branch is scaled in place: only a Linear's backward never reads its output.
        await VerifyAsync(Model("return x + Activations.Gelu(down.Forward(up.Forward(norm.Forward(x))));"),
            Diagnostic("SW0020").WithLocation(0).WithArguments("blocks.0", "Net", "the branch ending in 'blocks.0.gelu4' does not end in a Linear (it ends in Gelu)"),
            Diagnostic("SW0020").WithLocation(0).WithArguments("blocks.1", "Net", "the branch ending in 'blocks.1.gelu9' does not end in a Linear (it ends in Gelu)"));
    }

    [TestMethod]
    public async Task ABranchValueReadAfterTheAddIsReported()
    {
        await VerifyAsync(Model("""
                var h = norm.Forward(x);
                x = x + down.Forward(up.Forward(h));
                return x + h;
                """),
            Diagnostic("SW0020").WithLocation(0).WithArguments("blocks.0", "Net",
                "its residual add 'blocks.0.sum5' adds 'blocks.0.norm.out', which no branch of it computes"),
            Diagnostic("SW0020").WithLocation(0).WithArguments("blocks.1", "Net",
                "its residual add 'blocks.1.sum10' adds 'blocks.1.norm.out', which no branch of it computes"));
    }
}
