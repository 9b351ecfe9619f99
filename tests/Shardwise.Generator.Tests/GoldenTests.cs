using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Generator.Tests;

/// <summary>
/// The generated source of the example models is checked in; any change in emitted code shows as a diff.
/// Set SHARDWISE_UPDATE_GOLDEN=1 to rewrite the files after an intended change, then review the diff.
/// </summary>
[TestClass]
public sealed class GoldenTests
{
    [TestMethod]
    [DataRow("examples/TinyGpt/TinyGpt.cs", "Shardwise.Examples.TinyGpt.g.cs", "TinyGpt.g.cs.txt")]
    [DataRow("examples/MlpClassifier/MlpClassifier.cs", "Shardwise.Examples.MlpClassifier.g.cs", "MlpClassifier.g.cs.txt")]
    [DataRow("tests/Shardwise.Models.Tests/ShardedGpts.cs", "Shardwise.Models.Tests.HybridGpt.g.cs", "HybridGpt.g.cs.txt")]
    [DataRow("examples/ParallelGpt/ParallelGpt.cs", "Shardwise.Examples.ParallelGpt.g.cs", "ParallelGpt.g.cs.txt")] // partitioned checkpoint inputs
    public void GeneratedSourceMatchesGolden(string example, string hintName, string goldenFile)
    {
        var (sources, diagnostics) = GeneratorHarness.Run(GeneratorHarness.Example(example));

        Assert.AreEqual(0, diagnostics.Count, "generated code must compile cleanly: " + string.Join("\n", diagnostics));
        Assert.IsTrue(sources.TryGetValue(hintName, out var generated), "no output named " + hintName);

        var goldenPath = Path.Combine(GeneratorHarness.RepositoryRoot, "tests/Shardwise.Generator.Tests/Golden", goldenFile);
        if (Environment.GetEnvironmentVariable("SHARDWISE_UPDATE_GOLDEN") == "1") File.WriteAllText(goldenPath, generated);

        Assert.IsTrue(File.Exists(goldenPath), "missing golden file " + goldenPath + " (run with SHARDWISE_UPDATE_GOLDEN=1)");
        var expected = File.ReadAllText(goldenPath).Replace("\r\n", "\n");
        if (expected != generated)
        {
            Assert.Fail($"generated source differs from {goldenFile} at {FirstDifference(expected, generated)}; " +
                        "if intended, rerun with SHARDWISE_UPDATE_GOLDEN=1 and review the diff");
        }
    }

    private static string FirstDifference(string expected, string actual)
    {
        var a = expected.Split('\n');
        var b = actual.Split('\n');
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            if (a[i] != b[i]) return $"line {i + 1}:\n  expected: {a[i]}\n  actual:   {b[i]}";
        }
        return $"line {Math.Min(a.Length, b.Length) + 1} (lengths {a.Length} vs {b.Length})";
    }
}
