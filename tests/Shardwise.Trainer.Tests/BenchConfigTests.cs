using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The benchmark configs that docs/benchmarks.md names for TinyGpt (bench/configs/tinygpt-*.json) load without an error
/// or a warning and fit the model: `plan` runs every check a `bench` start would, before any backend exists.
/// </summary>
[TestClass]
public sealed class BenchConfigTests
{
    [TestMethod]
    public void TinyGptBenchConfigsPlanCleanly()
    {
        string configs = "";
        for (var dir = new DirectoryInfo(System.AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln"))) configs = Path.Combine(dir.FullName, "bench", "configs");
        var files = Directory.GetFiles(configs, "tinygpt-*.json").Order().ToArray();
        Assert.IsTrue(files.Length >= 8, string.Join(", ", files));
        foreach (string file in files)
        {
            var (code, output, errors) = TrainerRun.Run("plan", "--config", file);
            Assert.AreEqual(0, code, $"{Path.GetFileName(file)}: {errors}\n{output}");
            Assert.IsFalse(output.Contains("config warning"), $"{Path.GetFileName(file)}: {output}");
            StringAssert.Contains(output, "memory of rank 0", Path.GetFileName(file));
        }
    }
}
