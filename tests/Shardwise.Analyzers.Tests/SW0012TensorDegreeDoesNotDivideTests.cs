using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Shardwise.Analyzers.Tests.ModelAnalyzerVerifier;

namespace Shardwise.Analyzers.Tests;

/// <summary>
/// Only [Shard] layers are split, so only their sizes must divide by Tensor; the diagnostic points at the [Shard]
/// attribute and carries the [Model] attribute as an additional location, for the code fix.
/// </summary>
[TestClass]
public sealed class SW0012TensorDegreeDoesNotDivideTests
{
    [TestMethod]
    public async Task DivisibleSizesAreAccepted()
    {
        await VerifyAsync(ParallelismModels.Encoder("Model(Tensor = 4)", vocabulary: 64, width: 32, heads: 4, classes: 8, ParallelismModels.SplitEncoder));
    }

    [TestMethod]
    public async Task LayersWithoutShardAreReplicatedAndNotChecked()
    {
        // 65 tokens, 6 heads, 5 classes: nothing divides by 4, but nothing is split either.
        await VerifyAsync(ParallelismModels.Encoder("Model(Tensor = 4)", vocabulary: 65, width: 24, heads: 6, classes: 5));
    }

    [TestMethod]
    public async Task VocabularyAndOutputFeaturesAreReportedAtTheirShardAttributes()
    {
        await VerifyAsync(ParallelismModels.Encoder("{|#0:Model(Tensor = 2)|}", vocabulary: 65, width: 32, heads: 4, classes: 5,
                "[{|#1:Shard(ShardKind.Vocabulary)|}]", "[Shard(ShardKind.Column)]", "[{|#2:Shard(ShardKind.Column)|}]"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("tokens", "vocabulary", "65", "2", "1, 5, 13, 65", "1"),
            Diagnostic("SW0012").WithLocation(2).WithLocation(0).WithArguments("head", "out features", "5", "2", "1, 5", "1"));
    }

    [TestMethod]
    public async Task RowSplitLinearIsCheckedOnItsInputFeatures()
    {
        // A row-split head divides its 24 input features by 4 (its 5 outputs stay whole) but not by 16. With Tensor = 4
        // SW0012 is quiet; what remains is SW0017's: the head's input is replicated, not column-split.
        await VerifyAsync(ParallelismModels.Encoder("Model(Tensor = 4)", vocabulary: 64, width: 24, heads: 6, classes: 5, "", "", "[{|#0:Shard(ShardKind.Row)|}]"),
            Diagnostic("SW0017").WithLocation(0).WithArguments("head", "is row-parallel but its input is not column-split (Megatron would scatter it first)"));
        await VerifyAsync(ParallelismModels.Encoder("{|#0:Model(Tensor = 16)|}", vocabulary: 64, width: 24, heads: 6, classes: 5, "", "", "[{|#1:Shard(ShardKind.Row)|}]"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("head", "in features", "24", "16", "1, 2, 3, 4, 6, 8, 12, 24", "1, 2, 3, 4, 6, 8, 12, 24"));
    }

    [TestMethod]
    public async Task AttentionHeadsAndWidthAreReported()
    {
        // 6 heads of width 4: Tensor = 4 divides the width 24 but not the 6 heads.
        await VerifyAsync(ParallelismModels.Encoder("{|#0:Model(Tensor = 4)|}", vocabulary: 64, width: 24, heads: 6, classes: 8, "", "[{|#1:Shard(ShardKind.Column)|}]"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("attention", "heads", "6", "4", "1, 2, 3, 6", "1, 2, 3, 6"));
        // 2 heads of width 5: Tensor = 4 splits neither the heads nor the width.
        await VerifyAsync(ParallelismModels.Encoder("{|#0:Model(Tensor = 4)|}", vocabulary: 64, width: 10, heads: 2, classes: 8, "", "[{|#1:Shard(ShardKind.Column)|}]"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("attention", "heads", "2", "4", "1, 2", "1, 2"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("attention", "dimension", "10", "4", "1, 2, 5, 10", "1, 2"));
    }

    [TestMethod]
    public async Task EveryBlockOfTinyGptIsNamedAtTheOneShardAttribute()
    {
        // TinyGpt unchanged splits nothing: Tensor = 8 is accepted.
        await VerifyAsync("using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs").Replace("[Model]", "[Model(Tensor = 8)]"));

        // With its attention split by heads, 4 heads per block do not divide by 8; the blocks share one [Shard], in the Block class.
        string source = "using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs")
            .Replace("[Model]", "[{|#0:Model(Tensor = 8)|}]")
            .Replace("[Layer] private readonly CausalSelfAttention attention;", "[{|#1:Shard(ShardKind.Column)|}, Layer] private readonly CausalSelfAttention attention;");
        await VerifyAsync(source,
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("blocks.0.attention", "heads", "4", "8", "1, 2, 4", "1, 2, 4"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("blocks.1.attention", "heads", "4", "8", "1, 2, 4", "1, 2, 4"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("blocks.2.attention", "heads", "4", "8", "1, 2, 4", "1, 2, 4"),
            Diagnostic("SW0012").WithLocation(1).WithLocation(0).WithArguments("blocks.3.attention", "heads", "4", "8", "1, 2, 4", "1, 2, 4"));
    }
}

[TestClass]
public sealed class SW0012CodeFixTests
{
    [TestMethod]
    public async Task FixLowersTensorToTheLargestDegreeThatDividesEverySplit()
    {
        // 6 heads of width 4 (24) and a column-split head of 8 classes: 1, 2 divide all; 3 and 6 do not divide 8.
        string source = ParallelismModels.Encoder("Model(Tensor = 4)", vocabulary: 64, width: 24, heads: 6, classes: 8, "", "[Shard(ShardKind.Column)]", "[Shard(ShardKind.Column)]");
        var (titles, fixedSource) = await CodeFixRunner.ApplyAsync(source, "SW0012");
        CollectionAssert.AreEqual(new[] { "Set Tensor = 2" }, titles);
        Assert.AreEqual(source.Replace("Tensor = 4", "Tensor = 2"), fixedSource);
        await ModelAnalyzerVerifier.VerifyAsync(fixedSource);
    }

    [TestMethod]
    public async Task FixEditsTheModelAttributeWhenTheShardIsInALayerClass()
    {
        string source = "using Shardwise;\n" + RepositoryFiles.Read("examples/TinyGpt/TinyGpt.cs")
            .Replace("[Model]", "[Model(Tensor = 8)]")
            .Replace("[Layer] private readonly CausalSelfAttention attention;", "[Shard(ShardKind.Column), Layer] private readonly CausalSelfAttention attention;");
        var (_, fixedSource) = await CodeFixRunner.ApplyAsync(source, "SW0012");
        Assert.AreEqual(source.Replace("Tensor = 8", "Tensor = 4"), fixedSource);
        await ModelAnalyzerVerifier.VerifyAsync(fixedSource);
    }
}
