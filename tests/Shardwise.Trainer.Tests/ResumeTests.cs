using System.IO;
using System.Linq;
using System.Security.Cryptography;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;

namespace Shardwise.Trainer.Tests;

/// <summary>In fp32 on the CPU, 20 steps equal 10 steps + save + resume + 10 steps, bit for bit.</summary>
[TestClass]
public sealed class ResumeTests
{
    [TestMethod]
    public void TwentyStepsEqualTenPlusResumePlusTen()
    {
        var root = TrainerRun.TempDirectory();
        var config = TrainerRun.WriteConfig(root);
        var data = TrainerRun.SharedData("tinyshakespeare.txt");
        string straight = Path.Combine(root, "straight"), split = Path.Combine(root, "split");

        TrainerRun.Succeed("train", "--config", config, "--data", data, "--steps", "20", "--output", straight, "--eval-interval", "0");
        TrainerRun.Succeed("train", "--config", config, "--data", data, "--steps", "10", "--output", split, "--eval-interval", "0");
        var resumed = TrainerRun.Succeed("train", "--config", config, "--steps", "20", "--resume", split, "--eval-interval", "0");
        StringAssert.Contains(resumed, "resumed from");

        foreach (var file in new[] { "model.safetensors", "optimizer.safetensors" })
        {
            var a = TensorHashes(Path.Combine(straight, "step-000020", file));
            var b = TensorHashes(Path.Combine(split, "step-000020", file));
            CollectionAssert.AreEqual(a, b, $"{file} differs between the straight and the resumed run");
        }

        // The run must actually have trained: the weights moved away from the step-10 checkpoint.
        CollectionAssert.AreNotEqual(TensorHashes(Path.Combine(split, "step-000010", "model.safetensors")),
            TensorHashes(Path.Combine(split, "step-000020", "model.safetensors")));
    }

    private static string[] TensorHashes(string path)
    {
        using var reader = SafeTensorsReader.Open(path);
        return reader.Tensors.OrderBy(t => t.Name, System.StringComparer.Ordinal)
            .Select(t => t.Name + ":" + System.Convert.ToHexString(SHA256.HashData(reader.ReadAllBytes(t.Name))))
            .ToArray();
    }
}
