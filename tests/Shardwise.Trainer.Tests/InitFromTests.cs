using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;
using Shardwise.Precision;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// train --init-from: a new run that starts from trained weights. With a learning rate of 0 the first update leaves the
/// weights as loaded, so the new run's checkpoint shows exactly what was read: a run directory, a consolidated fp32
/// file, a sharded bf16 export.
/// </summary>
[TestClass]
public sealed class InitFromTests
{
    private static float[] Read(string file, string tensor)
    {
        using var reader = SafeTensorsReader.Open(file);
        var values = new float[reader.GetInfo(tensor).ElementCount];
        reader.Read(tensor, values);
        return values;
    }

    [TestMethod]
    public void StartsFromRunsCheckpointsAndConsolidatedFiles()
    {
        var root = TrainerRun.TempDirectory();
        string trained = Path.Combine(root, "trained");
        TrainerRun.Succeed("train", "--steps", "6", "--output", trained, "--eval-interval", "0");
        string fp32 = Path.Combine(root, "w.safetensors"), bf16 = Path.Combine(root, "wb.safetensors");
        TrainerRun.Succeed("consolidate", "--resume", trained, "--output", fp32);
        TrainerRun.Succeed("consolidate", "--resume", trained, "--output", bf16, "--dtype", "bf16", "--max-shard-size", "1MB");
        string frozen = TrainerRun.WriteSmallConfig(root, "lr0.json", "");
        File.WriteAllText(frozen, File.ReadAllText(frozen).Replace("\"lr\": 2e-3", "\"lr\": 0"));

        string FirstStepWeights(string source, string name)
        {
            string run = Path.Combine(root, name);
            var output = TrainerRun.Succeed("train", "--config", frozen, "--init-from", source, "--steps", "1", "--output", run, "--eval-interval", "0");
            StringAssert.Contains(output, "initialized from");
            StringAssert.Contains(output, "(step 0, fresh optimizer state)");
            return Path.Combine(run, "step-000001", "model.safetensors");
        }

        string original = Path.Combine(trained, "step-000006", "model.safetensors");
        foreach (var (source, name) in new[] { (trained, "from-run"), (Path.Combine(trained, "step-000006"), "from-checkpoint"), (fp32, "from-file") })
        {
            string loaded = FirstStepWeights(source, name);
            foreach (var tensor in new[] { "tokens.weight", "blocks.2.expand.weight", "finalNorm.bias" })
                CollectionAssert.AreEqual(Read(original, tensor), Read(loaded, tensor), $"{name}: {tensor}");
        }

        string fromBf16 = FirstStepWeights(Path.Combine(root, "wb.safetensors.index.json"), "from-bf16");
        var masters = Read(original, "blocks.1.attention.qkv.weight");
        var rounded = masters.Select(v => BFloat16Conversion.ToSingle(BFloat16Conversion.ToBFloat16(v))).ToArray();
        CollectionAssert.AreEqual(rounded, Read(fromBf16, "blocks.1.attention.qkv.weight"), "the bf16 export, widened");
        Assert.IsTrue(rounded.Zip(masters).Any(p => p.First != p.Second), "bf16 rounding changed some weights");

        // Fine-tuning from trained weights starts where the trained run ended, not at a fresh model's loss.
        string fresh = Path.Combine(root, "fresh"), tuned = Path.Combine(root, "tuned");
        TrainerRun.Succeed("train", "--steps", "2", "--output", fresh, "--eval-interval", "0", "--seed", "5");
        TrainerRun.Succeed("train", "--steps", "2", "--output", tuned, "--eval-interval", "0", "--seed", "5", "--init-from", trained);
        double freshLoss = TrainerRun.MetricsColumn(fresh, "loss")[0], tunedLoss = TrainerRun.MetricsColumn(tuned, "loss")[0];
        Assert.IsTrue(tunedLoss < freshLoss - 0.3, $"first loss from trained weights {tunedLoss:F3} against a fresh model's {freshLoss:F3}");
    }

    /// <summary>From a directory the new run encodes text with the checkpoint's tokenizer, not one built from its own data.</summary>
    [TestMethod]
    public void FromADirectoryTheTokenizerComesAlong()
    {
        var root = TrainerRun.TempDirectory();
        string shakespeare = Path.Combine(root, "shakespeare");
        TrainerRun.Succeed("train", "--data", TrainerRun.SharedData("tinyshakespeare.txt"), "--steps", "1", "--output", shakespeare, "--eval-interval", "0");
        string other = Path.Combine(root, "other.txt");
        File.WriteAllText(other, string.Concat(Enumerable.Repeat("zebra quartz jumps; ", 400)));
        string tuned = Path.Combine(root, "tuned"), fresh = Path.Combine(root, "fresh");
        TrainerRun.Succeed("train", "--data", other, "--steps", "1", "--output", tuned, "--eval-interval", "0", "--init-from", shakespeare);
        TrainerRun.Succeed("train", "--data", other, "--steps", "1", "--output", fresh, "--eval-interval", "0");
        string Tokenizer(string run) => File.ReadAllText(Path.Combine(run, "step-000001", "tokenizer.json"));
        Assert.AreEqual(Tokenizer(shakespeare), Tokenizer(tuned));
        Assert.AreNotEqual(Tokenizer(fresh), Tokenizer(tuned), "the new text alone has another alphabet");
    }

    [TestMethod]
    public void WrongShapesMissingTensorsAndBothStartsAreErrors()
    {
        var root = TrainerRun.TempDirectory();
        string file = Path.Combine(root, "partial.safetensors");
        using (var writer = SafeTensorsWriter.Create(file, [new SafeTensorSpec("tokens.weight", SafeTensorDType.F32, 65, 128), new SafeTensorSpec("positions.weight", SafeTensorDType.F32, 32, 128)]))
        {
            writer.Write("tokens.weight", new float[65 * 128]);
            writer.Write("positions.weight", new float[32 * 128]);
            writer.Complete();
        }
        var (code, _, errors) = TrainerRun.Run("train", "--init-from", file, "--steps", "1", "--output", Path.Combine(root, "a"));
        Assert.AreEqual(2, code, errors);
        StringAssert.Contains(errors, $"--init-from {file}: positions.weight is [32, 128] there; TinyGpt's is [64, 128]");

        string tokensOnly = Path.Combine(root, "tokens.safetensors");
        using (var writer = SafeTensorsWriter.Create(tokensOnly, [new SafeTensorSpec("tokens.weight", SafeTensorDType.F32, 65, 128)]))
        {
            writer.Write("tokens.weight", new float[65 * 128]);
            writer.Complete();
        }
        (code, _, errors) = TrainerRun.Run("train", "--init-from", tokensOnly, "--steps", "1", "--output", Path.Combine(root, "b"));
        Assert.AreEqual(2, code, errors);
        StringAssert.Contains(errors, "no tensor for 51 of TinyGpt's 52 parameters: positions.weight, blocks.0.attentionNorm.weight");

        (code, _, errors) = TrainerRun.Run("train", "--init-from", tokensOnly, "--resume", root);
        Assert.AreEqual(2, code, errors);
        StringAssert.Contains(errors, "pass one of them");
    }
}
