using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Generator.Model;
using Shardwise.Generator.Parsing;
using Shardwise.Generator.Planning;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator.Tests;

/// <summary>
/// The static pipeline cut: layer grouping, the exact DP checked against brute force, and the plan report of the
/// TinyGpt example compiled with [Model(Pipeline = 2)] and (Pipeline = 4), golden-tested like the generated sources.
/// </summary>
[TestClass]
public sealed class PipelinePlanTests
{
    [TestMethod]
    [DataRow(2, "TinyGpt.pipeline2.plan.txt")]
    [DataRow(4, "TinyGpt.pipeline4.plan.txt")]
    public void TinyGptPlanReportMatchesGolden(int stages, string goldenFile)
    {
        var (model, graph) = Load(TinyGpt(depth: 4, stages));
        var plan = ProgramPlanner.Plan(model);
        Assert.IsNotNull(plan);

        var goldenPath = Path.Combine(GeneratorHarness.RepositoryRoot, "tests/Shardwise.Generator.Tests/Golden", goldenFile);
        if (Environment.GetEnvironmentVariable("SHARDWISE_UPDATE_GOLDEN") == "1") File.WriteAllText(goldenPath, plan!.Report);
        Assert.IsTrue(File.Exists(goldenPath), "missing golden file " + goldenPath + " (run with SHARDWISE_UPDATE_GOLDEN=1)");
        Assert.AreEqual(File.ReadAllText(goldenPath).Replace("\r\n", "\n"), plan!.Report);
        Assert.AreEqual(graph.Ops.Count, plan.Graph.Ops.Count);
    }

    /// <summary>Every planning assumption set, and the cut pinned by hand: the report states them and prices the launch.</summary>
    [TestMethod]
    public void PlanReportWithAssumptionsMatchesGolden()
    {
        const string attribute = "[Model(Pipeline = 2, StageStarts = new[] { \"blocks.2\" }, DeviceMemoryGiB = 80, MicroBatch = 8, MicroBatches = 16, ZeroStage = 1, DataParallel = 4)]";
        var (path, text) = GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs");
        var (model, _) = Load((path, "using Shardwise;\n" + text.Replace("[Model]", attribute)));
        var plan = ProgramPlanner.Plan(model);
        Assert.IsNotNull(plan);

        const string goldenFile = "TinyGpt.assumptions.plan.txt";
        var goldenPath = Path.Combine(GeneratorHarness.RepositoryRoot, "tests/Shardwise.Generator.Tests/Golden", goldenFile);
        if (Environment.GetEnvironmentVariable("SHARDWISE_UPDATE_GOLDEN") == "1") File.WriteAllText(goldenPath, plan!.Report);
        Assert.IsTrue(File.Exists(goldenPath), "missing golden file " + goldenPath + " (run with SHARDWISE_UPDATE_GOLDEN=1)");
        Assert.AreEqual(File.ReadAllText(goldenPath).Replace("\r\n", "\n"), plan!.Report);
    }

    [TestMethod]
    public void PinnedCutStartsEachStageAtTheNamedLayer()
    {
        var (model, graph) = Load(TinyGpt(depth: 4, stages: 3));
        var pinned = model with { Assumptions = model.Assumptions with { StageStarts = EquatableArray.Of("blocks.1", "finalNorm") } };
        var plan = PipelinePlanner.Plan(pinned, graph);
        Assert.IsTrue(plan.IsCut && plan.IsPinned);
        CollectionAssert.AreEqual(new[] { "tokens", "blocks.1", "finalNorm" }, plan.StagePlans.Select(s => plan.Layers[s.FirstLayer].Name).ToArray());
        CollectionAssert.AreEqual(new[] { 3, 3, 3 }, plan.StagePlans.Select(s => s.LayerCount).ToArray());
        Assert.AreEqual(0, ParallelismValidator.Validate(pinned, plan, null).Count);

        // The searched cut differs: pinning really replaces the search.
        var searched = PipelinePlanner.Plan(model, graph);
        Assert.IsFalse(searched.IsPinned);
        CollectionAssert.AreNotEqual(plan.StagePlans.Select(s => s.FirstLayer).ToArray(), searched.StagePlans.Select(s => s.FirstLayer).ToArray());

        var unknown = model with { Assumptions = model.Assumptions with { StageStarts = EquatableArray.Of("blocks.1", "head") } };
        var invalid = PipelinePlanner.Plan(unknown, graph);
        Assert.IsFalse(invalid.IsCut);
        Assert.AreEqual("SW0018", ParallelismValidator.Validate(unknown, invalid, null).Single().Id);
        Assert.IsNull(ProgramPlanner.Plan(unknown), "an invalid pin is not emitted");
    }

    [TestMethod]
    public void GeneratorEmitsThePipelinedModel()
    {
        var (sources, _) = GeneratorHarness.Run(TinyGpt(depth: 4, stages: 2));
        Assert.IsTrue(sources.TryGetValue("Shardwise.Examples.TinyGpt.g.cs", out var generated));
        StringAssert.Contains(generated, "pipeline plan: 2 stages, 1F1B");
    }

    [TestMethod]
    public void LayersAreTopLevelPathsWithTheLossApart()
    {
        var (model, graph) = Load(TinyGpt(depth: 4, stages: 1));
        var plan = PipelinePlanner.Plan(model, graph);
        CollectionAssert.AreEqual(
            new[] { "tokens", "positions", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "finalNorm", "tokens (tied)", "loss" },
            plan.Layers.Select(l => l.Name).ToArray());

        // Every op is in exactly one layer, in order; the model's own positions op and embedding sum join the layer before.
        Assert.AreEqual(graph.Ops.Count, plan.Layers.Sum(l => l.OpCount));
        Assert.AreEqual(2, plan.Layers[0].OpCount); // tokens: embedding, Positions()
        Assert.AreEqual(2, plan.Layers[1].OpCount); // positions: embedding, +
        Assert.AreEqual(0, plan.Layers[7].NewParameterElements); // the tied head reuses tokens.weight
        Assert.AreEqual(1, plan.Layers[7].Parameters.Count);
        Assert.AreEqual(0, plan.Layers[8].Parameters.Count);
        Assert.AreEqual(graph.Parameters.Sum(p => p.Elements), plan.Layers.Sum(l => l.NewParameterElements));
    }

    [TestMethod]
    public void CostModelFollowsTheFormulas()
    {
        var (_, graph) = Load(TinyGpt(depth: 1, stages: 1));
        var costs = PipelineCostModel.Estimate(graph);
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            var op = graph.Ops[k];
            if (op.Layer == "blocks.0.expand")
            {
                // 64 positions × 128 → 512 with bias: 2·64·128·512 + 64·512 forward, twice that backward.
                Assert.AreEqual(2L * 64 * 128 * 512 + 64 * 512, costs[k].ForwardFlops);
                Assert.AreEqual(2 * costs[k].ForwardFlops, costs[k].BackwardFlops);
                Assert.AreEqual(128L * 512 + 512, costs[k].NewParameterElements);
                Assert.AreEqual(64L * 128 * 4, costs[k].ActivationBytes); // its input, kept for the weight gradient
            }
            if (op.Kind == Ir.OpKind.Attention)
            {
                Assert.AreEqual(4L * 64 * 64 * 128 + 4L * 64 * 64, costs[k].ForwardFlops);
                // Backward: dV, dP, dQ, dK (8·T²·d) plus QKᵀ and the softmax again from the log-sum-exp.
                Assert.AreEqual(10L * 64 * 64 * 128 + 4L * 64 * 64, costs[k].BackwardFlops);
                // qkv, y (so the projection after it keeps nothing new) and 4 heads × 64 fp32 log-sum-exps, planned
                // at two elements each; never the 4 × 64 × 64 probabilities.
                Assert.AreEqual(64L * 384 * 4 + 64L * 128 * 4 + 4L * 64 * 2 * 4, costs[k].ActivationBytes);
            }
        }
    }

    [TestMethod]
    public void CutIsOptimalAgainstBruteForce()
    {
        foreach (var (source, maxStages) in new[] { (TinyGpt(4, 1), 6), (TinyGpt(7, 1), 5), (TinyGpt(2, 1), 6), (Mlp(1), 3) })
        {
            var (model, graph) = Load(source);
            for (int p = 2; p <= maxStages; p++)
            {
                var plan = PipelinePlanner.Plan(model with { Pipeline = p }, graph);
                Assert.IsTrue(plan.IsCut);
                var (bestFlops, bestMemory) = BruteForce(plan.Layers, graph, p);
                Assert.AreEqual(bestFlops, plan.StagePlans.Max(s => s.Flops), $"{model.Root.Children.Count} p={p}: the slowest stage is not minimal");
                Assert.AreEqual(bestMemory, plan.StagePlans.Max(s => Memory(s, p)), $"p={p}: the tie-break by memory is not minimal");
                Assert.IsTrue(plan.StagePlans.All(s => s.ParameterElements > 0), $"p={p}: a stage without parameters");
                Assert.AreEqual(plan.Layers.Count, plan.StagePlans.Sum(s => s.LayerCount));
            }
        }
    }

    [TestMethod]
    public void TiedEmbeddingIsReportedWhenItsUsesLandOnDifferentStages()
    {
        var (model, graph) = Load(TinyGpt(depth: 4, stages: 2));
        var plan = PipelinePlanner.Plan(model, graph);
        CollectionAssert.AreEqual(new[] { "tokens.weight (stages 0, 1)" }, plan.TiedParameters.ToArray());
        Assert.AreEqual(new TiedParameter("tokens.weight", 65 * 128, EquatableArray.Of(0, 1)), plan.Tied.Single());
        // The last stage holds a copy of the table: counted on both stages.
        Assert.AreEqual(graph.Parameters.Sum(p => p.Elements) + 65 * 128, plan.StagePlans.Sum(s => s.ParameterElements));
    }

    [TestMethod]
    public void StageWithoutParametersIsAvoidedWhenPossible()
    {
        // Layers: input, hidden, classifier, loss. The loss alone would be a light last stage; it never gets one.
        var (model, graph) = Load(Mlp(3));
        var plan = PipelinePlanner.Plan(model, graph);
        Assert.IsTrue(plan.StagePlans.All(s => s.ParameterElements > 0));
        Assert.AreEqual(0, ParallelismValidator.Validate(model, plan, null).Count);

        var four = PipelinePlanner.Plan(model with { Pipeline = 4 }, graph);
        var diagnostics = ParallelismValidator.Validate(model with { Pipeline = 4 }, four, null);
        Assert.AreEqual("SW0011", diagnostics.Single().Id);
        Assert.IsNull(ProgramPlanner.Plan(model with { Pipeline = 4 }), "an invalid model is not emitted");
    }

    [TestMethod]
    public void MoreStagesThanLayersIsNotCut()
    {
        var (model, graph) = Load(Mlp(5));
        var plan = PipelinePlanner.Plan(model, graph);
        Assert.IsFalse(plan.IsCut);
        Assert.AreEqual("SW0010", ParallelismValidator.Validate(model, plan, null).Single().Id);
    }

    private static long Memory(PipelineStage stage, int stages) => 16 * stage.ParameterElements + (long)(stages - stage.Index) * stage.ActivationBytes;

    /// <summary>Every way to cut the layers into p non-empty contiguous stages each holding a parameter: the best (max FLOPs, then max memory).</summary>
    private static (long Flops, long Memory) BruteForce(EquatableArray<PipelineLayer> layers, Ir.IrGraph graph, int p)
    {
        int n = layers.Count;
        long bestFlops = long.MaxValue, bestMemory = long.MaxValue;
        foreach (var cuts in Cuts(n, p))
        {
            long flops = 0, memory = 0;
            bool ok = true;
            for (int s = 0; s < p; s++)
            {
                var range = Enumerable.Range(cuts[s], cuts[s + 1] - cuts[s]).Select(l => layers[l]).ToList();
                var held = range.SelectMany(l => l.Parameters).Distinct().ToList();
                if (held.Count == 0) ok = false;
                flops = Math.Max(flops, range.Sum(l => l.Flops));
                memory = Math.Max(memory, 16 * held.Sum(id => graph.Parameters[id].Elements) + (long)(p - s) * range.Sum(l => l.ActivationBytes));
            }
            if (!ok) continue;
            if (flops < bestFlops || (flops == bestFlops && memory < bestMemory)) (bestFlops, bestMemory) = (flops, memory);
        }
        return (bestFlops, bestMemory);
    }

    private static IEnumerable<int[]> Cuts(int n, int p)
    {
        if (p == 1)
        {
            yield return new[] { 0, n };
            yield break;
        }
        for (int last = p - 1; last < n; last++)
        {
            foreach (var prefix in Cuts(last, p - 1)) yield return prefix.Concat(new[] { n }).ToArray();
        }
    }

    private static (ModelSpec Model, Ir.IrGraph Graph) Load((string Path, string Text) source)
    {
        var compilation = GeneratorHarness.Compile(source);
        var symbol = compilation.GetTypeByMetadataName("Shardwise.Examples." + (source.Text.Contains("class TinyGpt") ? "TinyGpt" : "MlpClassifier"))!;
        var parse = ModelParser.Parse(symbol, compilation, CancellationToken.None);
        Assert.IsNotNull(parse.Model, string.Join("\n", parse.Diagnostics));
        var trace = Ir.Tracer.Trace(parse.Model!);
        Assert.IsNotNull(trace.Graph);
        return (parse.Model!, trace.Graph!);
    }

    /// <summary>The TinyGpt example with another depth and [Model(Pipeline = stages)].</summary>
    private static (string, string) TinyGpt(int depth, int stages)
    {
        var (path, text) = GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs");
        return (path, "using Shardwise;\n" + text.Replace("[Model]", $"[Model(Pipeline = {stages})]").Replace("Depth = 4;", $"Depth = {depth};"));
    }

    private static (string, string) Mlp(int stages)
    {
        var (path, text) = GeneratorHarness.Example("examples/MlpClassifier/MlpClassifier.cs");
        return (path, "using Shardwise;\n" + text.Replace("[Model]", $"[Model(Pipeline = {stages})]"));
    }
}
