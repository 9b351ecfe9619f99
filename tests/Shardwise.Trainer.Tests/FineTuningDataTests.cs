using System;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Data;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// <c>train --data pairs.jsonl</c> with prompt/completion records: the trainer says the loss covers only the
/// completions, and TinyGpt learns the task (repeat the word's last letter twice) from them: the validation loss,
/// also over completions only, falls well below its first value (the random words of the prompts could not: they are
/// never predictable). The masking itself: PromptCompletionTests (Data.Tests) and
/// IgnoreIndexTests (Runtime.Tests).
/// </summary>
[TestClass]
public sealed class FineTuningDataTests
{
    /// <summary>A masked batch straight from the sampler into the loss op: its ignored targets leave the mean.</summary>
    [TestMethod]
    public void TheSamplersMaskedTargetsLeaveTheLoss()
    {
        const int vocabulary = 9, rows = 2, context = 12;
        var random = new Random(11);
        int[] tokens = Enumerable.Range(0, 300).Select(_ => random.Next(vocabulary)).ToArray();
        bool[] trainable = tokens.Select((_, i) => i % 5 < 2).ToArray();
        var sampler = new TokenDataset(tokens, vocabulary, 1.0, trainable).CreateSampler(DataSplit.Train, rows, context, seed: 3);
        int[] inputs = new int[rows * context], targets = new int[rows * context];
        sampler.NextBatch(inputs, targets);
        double[] logits = Enumerable.Range(0, rows * context * vocabulary).Select(_ => random.NextDouble() * 4 - 2).ToArray();

        var ops = new CpuOps<double>();
        ops.Allocate(Ops.Arena.Activations, logits.Length);
        ops.AllocateIndices(targets.Length);
        var logitSlice = new Ops.Slice(Ops.Arena.Activations, 0, logits.Length);
        var targetSlice = new Ops.IndexSlice(0, targets.Length);
        ops.Load(logits, logitSlice);
        ops.LoadIndices(targets, targetSlice);
        double loss = ops.CrossEntropy(logitSlice, targetSlice, rows * context, vocabulary);

        double sum = 0;
        int counted = 0;
        for (int r = 0; r < rows * context; r++)
        {
            if (targets[r] == TokenDataset.IgnoredTarget) continue;
            var row = logits.AsSpan(r * vocabulary, vocabulary).ToArray();
            sum += Math.Log(row.Sum(Math.Exp)) - row[targets[r]];
            counted++;
        }

        Assert.IsTrue(counted > 0 && counted < rows * context, $"{counted} of {rows * context} targets count");
        Assert.AreEqual(sum / counted, loss, 1e-12);
    }

    [TestMethod]
    public void PromptCompletionPairsTrainOnTheCompletions()
    {
        string root = TrainerRun.TempDirectory();
        string data = Path.Combine(root, "reverse.jsonl"), config = Path.Combine(root, "ds_config.json"), output = Path.Combine(root, "run");
        var random = new Random(7);
        File.WriteAllLines(data, Enumerable.Range(0, 4000).Select(_ =>
        {
            string word = new(Enumerable.Range(0, random.Next(2, 7)).Select(_ => (char)('a' + random.Next(8))).ToArray());
            return $$"""{"prompt": "{{word}}=", "completion": "{{word[^1]}}{{word[^1]}}"}""";
        }));
        File.WriteAllText(config, """
            { "train_micro_batch_size_per_gpu": 32, "gradient_accumulation_steps": 1, "steps_per_print": 10,
              "optimizer": { "type": "AdamW", "params": { "lr": 3e-3, "weight_decay": 0.0 } } }
            """);

        string log = TrainerRun.Succeed("train", "--config", config, "--data", data, "--steps", "60", "--output", output,
            "--eval-interval", "20", "--eval-batches", "4");
        StringAssert.Contains(log, "prompt/completion pairs: the loss covers the");
        StringAssert.Contains(log, "completion tokens and their end markers, never the prompts; one example per row, padded after its end");

        string[] lines = File.ReadAllLines(Path.Combine(output, "metrics.csv"));
        int column = Array.IndexOf(lines[0].Split(','), "val_loss");
        double[] validation = lines.Skip(1).Select(line => line.Split(',')[column]).Where(v => v.Length > 0)
            .Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        Assert.AreEqual(3, validation.Length, string.Join("\n", lines));
        Assert.IsTrue(validation[^1] < 0.8 * validation[0], $"validation loss over completions {string.Join(" → ", validation)}");

        string packed = TrainerRun.Succeed("train", "--config", config, "--data", data, "--steps", "1", "--output", Path.Combine(root, "packed"),
            "--eval-interval", "0", "--packing");
        StringAssert.Contains(packed, "packed (--packing): windows at any offset of the examples back to back");
        var (code, _, errors) = TrainerRun.Run("train", "--config", config, "--steps", "2", "--resume", Path.Combine(root, "packed"), "--eval-interval", "0");
        Assert.AreEqual(2, code, "resuming packed data without --packing");
        StringAssert.Contains(errors, "(was --packing changed?)");
    }
}
