using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>The pipeline caches: unrelated edits re-emit nothing, and its models hold no Roslyn symbols or syntax.</summary>
[TestClass]
public sealed class IncrementalityTests
{
    private static readonly string[] TrackedSteps = { TrackingNames.Parse, TrackingNames.ValidModels, TrackingNames.Plan };

    [TestMethod]
    public void UnrelatedEditLeavesEveryOutputCached()
    {
        var compilation = GeneratorHarness.Compile(GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs"));
        var driver = GeneratorHarness.CreateDriver(trackSteps: true).RunGenerators(compilation);
        Assert.AreEqual(1, driver.GetRunResult().GeneratedTrees.Length);

        var unrelated = CSharpSyntaxTree.ParseText("namespace Other; public static class Helper { public static int Twice(int x) => 2 * x; }",
            GeneratorHarness.ParseOptions, "Helper.cs");
        driver = driver.RunGenerators(compilation.AddSyntaxTrees(unrelated));

        var result = driver.GetRunResult().Results.Single();
        foreach (var output in result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs))
            Assert.AreEqual(IncrementalStepRunReason.Cached, output.Reason, "an output was regenerated after an unrelated edit");

        foreach (var name in TrackedSteps)
        {
            Assert.IsTrue(result.TrackedSteps.TryGetValue(name, out var steps), "step " + name + " was not tracked");
            foreach (var output in steps.SelectMany(s => s.Outputs))
                Assert.IsTrue(output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                    $"step {name} reran with reason {output.Reason}");
        }
    }

    [TestMethod]
    public void EditToTheModelReEmits()
    {
        var (path, text) = GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs");
        var compilation = GeneratorHarness.Compile((path, text));
        var driver = GeneratorHarness.CreateDriver(trackSteps: true).RunGenerators(compilation);

        var oldTree = compilation.SyntaxTrees.Single();
        var newTree = oldTree.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(text.Replace("Depth = 4", "Depth = 3")));
        driver = driver.RunGenerators(compilation.ReplaceSyntaxTree(oldTree, newTree));

        var result = driver.GetRunResult().Results.Single();
        var reasons = result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs).Select(o => o.Reason).ToList();
        CollectionAssert.Contains(reasons, IncrementalStepRunReason.Modified, "a real model change must re-emit");
        StringAssert.Contains(driver.GetRunResult().GeneratedTrees.Single().ToString(), "blocks.2.");
        Assert.IsFalse(driver.GetRunResult().GeneratedTrees.Single().ToString().Contains("blocks.3."), "the removed block must be gone");
    }

    [TestMethod]
    public void PipelineModelsHoldNoSymbolsSyntaxOrCompilation()
    {
        var compilation = GeneratorHarness.Compile(GeneratorHarness.Example("examples/TinyGpt/TinyGpt.cs"));
        var result = GeneratorHarness.CreateDriver(trackSteps: true).RunGenerators(compilation).GetRunResult().Results.Single();

        int visited = 0;
        foreach (var name in TrackedSteps)
        {
            foreach (var step in result.TrackedSteps[name])
            {
                foreach (var (value, _) in step.Outputs) visited += Walk(value, name, new HashSet<object>(ReferenceEqualityComparer.Instance));
            }
        }
        Assert.IsTrue(visited > 100, "the walk must actually cover the model graph (visited " + visited + ")");
    }

    private static int Walk(object? node, string path, HashSet<object> seen)
    {
        if (node is null || node is string || node.GetType().IsPrimitive || node.GetType().IsEnum) return 0;
        if (node is ISymbol or SyntaxNode or Compilation or SemanticModel or SyntaxTree or Location)
            Assert.Fail($"pipeline model holds a {node.GetType().Name} at {path}");
        if (!node.GetType().IsValueType && !seen.Add(node)) return 0;

        int count = 1;
        if (node is IEnumerable items)
        {
            int i = 0;
            foreach (var item in items) count += Walk(item, $"{path}[{i++}]", seen);
            return count;
        }
        foreach (var field in node.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            count += Walk(field.GetValue(node), path + "." + field.Name, seen);
        return count;
    }
}
