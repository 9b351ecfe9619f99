using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Examples;

namespace Shardwise.Models.Tests;

/// <summary>
/// The generated forward and the eager [Forward] body, run as written, agree on the same weights
/// (float32, max abs difference &lt; 1e-5).
/// </summary>
[TestClass]
public sealed class GeneratedEqualsEagerTests
{
    private const float Tolerance = 1e-5f;

    [TestMethod]
    public void TinyGptLoss()
    {
        const int batch = 3;
        var random = new Random(21);
        var model = new TinyGpt();
        var program = new TinyGpt.Compiled<float>(new CpuOps<float>(), batch);
        RandomData.Parameters(program, seed: 4);
        model.CopyParametersFrom<float>(program.Parameters);

        var ids = RandomData.Tokens(random, batch * TinyGpt.Context, TinyGpt.Vocabulary);
        var targets = RandomData.Tokens(random, batch * TinyGpt.Context, TinyGpt.Vocabulary);
        float compiled = program.Forward(ids, targets);
        float eager = model.Forward(Tensor.Tokens(ids, batch, TinyGpt.Context), Tensor.Tokens(targets, batch, TinyGpt.Context)).Item();

        Assert.IsTrue(Math.Abs(compiled - eager) < Tolerance, $"compiled {compiled} vs eager {eager}");
        Assert.IsTrue(compiled > 0.5f, "random weights must give a non-trivial loss");
    }

    [TestMethod]
    public void MlpClassifierLoss()
    {
        const int batch = 4;
        var random = new Random(22);
        var model = new MlpClassifier();
        var program = new MlpClassifier.Compiled<float>(new CpuOps<float>(), batch);
        RandomData.Parameters(program, seed: 5);
        model.CopyParametersFrom<float>(program.Parameters);

        var features = Array.ConvertAll(RandomData.Doubles(random, batch * MlpClassifier.Sequence * MlpClassifier.Features), v => (float)v);
        var labels = RandomData.Tokens(random, batch * MlpClassifier.Sequence, MlpClassifier.Classes);
        float compiled = program.Forward(features, labels);
        float eager = model.Forward(Tensor.FromArray(features, batch, MlpClassifier.Sequence, MlpClassifier.Features),
            Tensor.Tokens(labels, batch, MlpClassifier.Sequence)).Item();

        Assert.IsTrue(Math.Abs(compiled - eager) < Tolerance, $"compiled {compiled} vs eager {eager}");
    }

    [TestMethod]
    public void AttentionOutputElementwise()
    {
        const int batch = 2;
        var random = new Random(23);
        var model = new AttentionModel();
        var program = new AttentionModel.Compiled<float>(new CpuOps<float>(), batch);
        RandomData.Parameters(program, seed: 6);
        model.CopyParametersFrom<float>(program.Parameters);

        var x = Array.ConvertAll(RandomData.Doubles(random, batch * 40), v => (float)v);
        program.Forward(x);
        var compiled = new float[batch * 40];
        program.Read(program.Output, compiled);
        var eager = model.Forward(Tensor.FromArray(x, batch, 5, 8)).Data;

        double maxDifference = 0;
        for (int i = 0; i < compiled.Length; i++) maxDifference = Math.Max(maxDifference, Math.Abs(compiled[i] - eager[i]));
        Assert.IsTrue(maxDifference < Tolerance, $"max abs difference {maxDifference}");
    }

    [TestMethod]
    public void ParametersRoundTripThroughTheLayout()
    {
        var model = new TinyGpt();
        model.InitializeParameters(seed: 9);
        var flat = new float[TinyGpt.ParameterLayout.TotalElements];
        model.CopyParametersTo<float>(flat);

        var copy = new TinyGpt();
        copy.CopyParametersFrom<float>(flat);
        var again = new float[flat.Length];
        copy.CopyParametersTo<float>(again);
        CollectionAssert.AreEqual(flat, again);

        // GPT-2 initialisation: LayerNorm gains are one, biases zero, weights small but not zero.
        var layout = TinyGpt.ParameterLayout;
        foreach (var slot in layout.Slots)
        {
            var values = flat.AsSpan((int)slot.Offset, (int)slot.Length);
            if (slot.Name.EndsWith("Norm.weight")) Assert.AreEqual(1f, values[0], slot.Name);
            else if (slot.Name.EndsWith(".bias")) Assert.AreEqual(0f, values[0], slot.Name);
            else Assert.IsTrue(System.Numerics.Tensors.TensorPrimitives.Norm(values) > 0, slot.Name);
        }
    }
}
