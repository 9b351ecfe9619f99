using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0021LayerCannotDropTokensTests
{
    private static string Model(string blockForward, string attribute = ", {|#0:TokenDrop|}", string headAttribute = "") => $$"""
        using Shardwise;

        [Model]
        public partial class Net
        {
            [Layer] private readonly Embedding tokens = new(16, 8);
            [Layer{{attribute}}] private readonly Block[] blocks = Layers.Repeat(2, () => new Block());
            [Layer{{headAttribute}}] private readonly LayerNorm finalNorm = new(8);

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
            [Layer] private readonly CausalSelfAttention attention = new(8, 2);
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
    public async Task TransformerBlocksAreAccepted()
    {
        await VerifyAsync(Model("""
                x = x + attention.Forward(norm.Forward(x));
                return x + down.Forward(Activations.Gelu(up.Forward(x)));
                """));
        // With [LayerDrop] on the same blocks, and in a post-norm form (random-LTD does not need x + f(x)).
        await VerifyAsync(Model("return x + down.Forward(Activations.Gelu(up.Forward(norm.Forward(x))));", attribute: ", LayerDrop, TokenDrop"));
        await VerifyAsync(Model("return norm.Forward(x + attention.Forward(x));"));
    }

    [TestMethod]
    public async Task ABlockReturningItsInputIsReported()
    {
        const string reason = "its forward returns its input unchanged";
        await VerifyAsync(Model("return x;"),
            Diagnostic("SW0021").WithLocation(0).WithArguments("blocks.0", "Net", reason),
            Diagnostic("SW0021").WithLocation(0).WithArguments("blocks.1", "Net", reason));
    }

    [TestMethod]
    public async Task ATokenDropLayerTakingTwoTensorsIsAShapeError()
    {
        // The gather needs the one sequence the layer runs on: SW0004 at the call.
        const string source = """
            using Shardwise;

            [Model]
            public partial class Net
            {
                [Layer] private readonly Embedding tokens = new(16, 8);
                [Layer, TokenDrop] private readonly Pair[] pairs = Layers.Repeat(1, () => new Pair());
                [Layer] private readonly LayerNorm finalNorm = new(8);

                [Forward]
                public Tensor Forward([Tokens(4)] Tensor ids, [Tokens(4)] Tensor labels)
                {
                    var x = tokens.Forward(ids);
                    foreach (var pair in pairs)
                        x = {|#0:pair.Forward(x, x)|};
                    return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), labels);
                }
            }

            [Layer]
            public sealed class Pair
            {
                [Layer] private readonly Linear mix = new(8, 8);

                [Forward]
                public Tensor Forward(Tensor a, Tensor b) => a + mix.Forward(b);
            }
            """;
        await VerifyAsync(source, Diagnostic("SW0004").WithLocation(0).WithArguments("pairs.0 ([TokenDrop])", "one input [batch, sequence, width]", "2 inputs"));
    }

    [TestMethod]
    public async Task TokenDropOnABuiltInLayerIsReported()
    {
        await VerifyAsync(Model("return x + down.Forward(up.Forward(x));", attribute: "", headAttribute: ", {|#0:TokenDrop|}"),
            Diagnostic("SW0021").WithLocation(0).WithArguments("finalNorm", "Net",
                "it is a built-in LayerNorm; [TokenDrop] goes on a [Layer] class whose [Forward] takes the sequence"));
    }
}
