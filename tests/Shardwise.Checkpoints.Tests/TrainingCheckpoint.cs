using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Checkpoints.Tests;

/// <summary>
/// The files a trainer puts in a checkpoint (see docs/checkpoints.md), with random non-zero contents derived
/// from the step, so two checkpoints never look alike and a mixed-up read-back is caught.
/// </summary>
internal sealed class TrainingCheckpoint
{
    private static readonly (string Name, long[] Shape)[] Parameters =
    [
        ("embed.weight", [32, 8]),
        ("layers.0.attn.qkv.weight", [24, 8]),
        ("layers.0.attn.qkv.bias", [24]),
        ("head.weight", [10, 8]),
    ];

    private TrainingCheckpoint(long step)
    {
        Step = step;
        var random = new Random((int)step * 7919 + 17);
        foreach (var (name, shape) in Parameters)
        {
            var length = (int)shape.Aggregate(1L, (a, b) => a * b);
            Weights[name] = TestData.Floats(random, length);
            ExpAvg[name] = TestData.Floats(random, length, 1e-5, 1e-2);
            ExpAvgSq[name] = TestData.Floats(random, length, 1e-8, 1e-4).Select(Math.Abs).ToArray();
        }

        StateJson = $"{{\"global_step\":{step},\"micro_step\":{step * 4},\"loss_scale\":65536.0,\"rng\":\"{random.NextInt64():x}\"}}";
        TokenizerJson = $"{{\"version\":\"1.0\",\"vocab_size\":32,\"salt\":{random.Next(1, 1000)}}}";
    }

    public long Step { get; }

    public string Tag => CheckpointTag.ForStep(Step);

    public Dictionary<string, float[]> Weights { get; } = [];

    public Dictionary<string, float[]> ExpAvg { get; } = [];

    public Dictionary<string, float[]> ExpAvgSq { get; } = [];

    public string StateJson { get; }

    public string TokenizerJson { get; }

    public static TrainingCheckpoint ForStep(long step) => new(step);

    public void WriteModel(CheckpointWriter save)
    {
        using var model = save.CreateSafeTensors("model.safetensors",
            Parameters.Select(p => new SafeTensorSpec(p.Name, SafeTensorDType.F32, p.Shape)),
            new Dictionary<string, string> { ["format"] = "pt", ["global_step"] = Step.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        foreach (var (name, _) in Parameters)
        {
            model.Write(name, Weights[name]);
        }

        model.Complete();
    }

    public void WriteOptimizer(CheckpointWriter save)
    {
        var specs = Parameters.SelectMany(p => new[]
        {
            new SafeTensorSpec($"{p.Name}.exp_avg", SafeTensorDType.F32, p.Shape),
            new SafeTensorSpec($"{p.Name}.exp_avg_sq", SafeTensorDType.F32, p.Shape),
        }).Append(new SafeTensorSpec("step", SafeTensorDType.I64));
        using var optimizer = save.CreateSafeTensors("optimizer.safetensors", specs);
        foreach (var (name, _) in Parameters)
        {
            optimizer.Write($"{name}.exp_avg", ExpAvg[name]);
            optimizer.Write($"{name}.exp_avg_sq", ExpAvgSq[name]);
        }

        optimizer.Write("step", [Step]);
        optimizer.Complete();
    }

    public void WriteState(CheckpointWriter save) => save.WriteAllText("state.json", StateJson);

    public void WriteTokenizer(CheckpointWriter save) => save.WriteAllText("tokenizer.json", TokenizerJson);

    public void WriteAll(CheckpointWriter save)
    {
        WriteModel(save);
        WriteOptimizer(save);
        WriteState(save);
        WriteTokenizer(save);
    }

    /// <summary>Saves and commits this checkpoint.</summary>
    public string SaveTo(CheckpointStore store)
    {
        using var save = store.BeginSave(Tag);
        WriteAll(save);
        return save.Commit();
    }

    /// <summary>Every file in <paramref name="directory"/> holds exactly what this checkpoint saved.</summary>
    public void AssertStoredIn(string directory)
    {
        using (var model = SafeTensorsReader.Open(Path.Combine(directory, "model.safetensors")))
        {
            Assert.AreEqual(Step.ToString(System.Globalization.CultureInfo.InvariantCulture), model.Metadata["global_step"]);
            foreach (var (name, expected) in Weights)
            {
                AssertTensor(model, name, expected);
            }
        }

        using (var optimizer = SafeTensorsReader.Open(Path.Combine(directory, "optimizer.safetensors")))
        {
            foreach (var (name, _) in Parameters)
            {
                AssertTensor(optimizer, $"{name}.exp_avg", ExpAvg[name]);
                AssertTensor(optimizer, $"{name}.exp_avg_sq", ExpAvgSq[name]);
            }

            var step = new long[1];
            optimizer.Read("step", step);
            Assert.AreEqual(Step, step[0]);
        }

        Assert.AreEqual(StateJson, File.ReadAllText(Path.Combine(directory, "state.json")));
        Assert.AreEqual(TokenizerJson, File.ReadAllText(Path.Combine(directory, "tokenizer.json")));
    }

    private static void AssertTensor(SafeTensorsReader reader, string name, float[] expected)
    {
        var actual = new float[expected.Length];
        reader.Read(name, actual);
        CollectionAssert.AreEqual(MemoryMarshal.AsBytes(expected.AsSpan()).ToArray(), MemoryMarshal.AsBytes(actual.AsSpan()).ToArray(), $"{reader.FilePath}: {name}");
    }
}
