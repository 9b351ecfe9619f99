using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class SW0019StageBoundaryTests
{
    private static string TwoPaths(string attribute) => $$"""
        using Shardwise;

        [{{attribute}}]
        public partial class TwoPaths
        {
            [Layer] private readonly Embedding tokens = new(16, 8);
            [Layer] private readonly Linear left = new(8, 8);
            [Layer] private readonly Linear right = new(8, 8);
            [Layer] private readonly Linear head = new(8, 16);

            [Forward]
            public Tensor Forward([Tokens(4)] Tensor ids, [Tokens(4)] Tensor labels)
            {
                var x = tokens.Forward(ids);
                var a = left.Forward(x);
                var b = right.Forward(x);
                return Loss.CrossEntropy(head.Forward(a + b), labels);
            }
        }
        """;

    [TestMethod]
    public async Task ChainsCutWithOneTensorAreAccepted()
    {
        // Only the note that the tied embedding and head live on the first and last stage (SW0016).
        await VerifyAsync("using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs").Replace("[Model]", "[{|#0:Model(Pipeline = 4)|}]"),
            Diagnostic("SW0016").WithLocation(0).WithArguments("tokens.weight", "TinyGpt", "0 and 3", "8,320"));
    }

    [TestMethod]
    public async Task ACutAcrossTwoLiveTensorsIsReported()
    {
        // Four stages put left and right on stages of their own: two tensors cross each of their boundaries.
        await VerifyAsync(TwoPaths("{|#0:Model(Pipeline = 4)|}"),
            Diagnostic("SW0019").WithLocation(0).WithArguments("TwoPaths", "stage 1 would send 2 tensors (tokens.out, left.out)"),
            Diagnostic("SW0019").WithLocation(0).WithArguments("TwoPaths", "stage 2 would receive 2 tensors (tokens.out, left.out)"));
    }
}
