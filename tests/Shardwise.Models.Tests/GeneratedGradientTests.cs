using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// The generated backward of every built-in layer and of a whole two-block GPT with a tied head agrees with
/// float64 central finite differences (relative error &lt; 1e-6), for every parameter tensor and real input.
/// </summary>
[TestClass]
public sealed class GeneratedGradientTests
{
    private const int Batch = 2;

    /// <summary>Checks a model with one real input and a real output, through the objective Σ output·R.</summary>
    private static void CheckRealModel(CompiledModel<double> program, int inputLength, int outputLength,
        Action<double[]> forward, Action<double[]> backward, Func<Ops.Slice> output, Ops.Slice inputGradient)
    {
        var random = new Random(7);
        RandomData.Parameters(program, seed: 11);
        var x = RandomData.Doubles(random, inputLength);
        var r = RandomData.Doubles(random, outputLength);
        var y = new double[outputLength];

        double Objective()
        {
            forward(x);
            program.Read(output(), y);
            return RandomData.Dot(y, r);
        }

        var checker = new GradientChecker(program, Objective, () => { forward(x); backward(r); })
            .WithInput("x", x, inputGradient);
        checker.Check();
    }

    [TestMethod]
    public void Linear()
    {
        var p = new LinearModel.Compiled<double>(new CpuOps<double>(), Batch);
        CheckRealModel(p, Batch * 15, Batch * 12, x => p.Forward(x), r => p.Backward(r), () => p.Output, p.GradientOf("x"));
    }

    [TestMethod]
    public void LinearWithoutBias()
    {
        var p = new LinearNoBiasModel.Compiled<double>(new CpuOps<double>(), Batch);
        Assert.AreEqual(1, p.Layout.Slots.Count, "no bias parameter");
        CheckRealModel(p, Batch * 15, Batch * 12, x => p.Forward(x), r => p.Backward(r), () => p.Output, p.GradientOf("x"));
    }

    [TestMethod]
    public void LayerNorm()
    {
        var p = new LayerNormModel.Compiled<double>(new CpuOps<double>(), Batch);
        CheckRealModel(p, Batch * 21, Batch * 21, x => p.Forward(x), r => p.Backward(r), () => p.Output, p.GradientOf("x"));
    }

    [TestMethod]
    public void Gelu()
    {
        var random = new Random(3);
        var p = new GeluModel.Compiled<double>(new CpuOps<double>(), Batch);
        var x = RandomData.Doubles(random, Batch * 21, scale: 3);
        var r = RandomData.Doubles(random, Batch * 21);
        var y = new double[r.Length];
        double Objective()
        {
            p.Forward(x);
            p.Read(p.Output, y);
            return RandomData.Dot(y, r);
        }
        new GradientChecker(p, Objective, () => { p.Forward(x); p.Backward(r); }).WithInput("x", x, p.GradientOf("x")).Check();
    }

    [TestMethod]
    public void ResidualAdd()
    {
        var p = new ResidualModel.Compiled<double>(new CpuOps<double>(), Batch);
        CheckRealModel(p, Batch * 24, Batch * 24, x => p.Forward(x), r => p.Backward(r), () => p.Output, p.GradientOf("x"));
    }

    [TestMethod]
    public void CausalSelfAttention()
    {
        var p = new AttentionModel.Compiled<double>(new CpuOps<double>(), Batch);
        CheckRealModel(p, Batch * 40, Batch * 40, x => p.Forward(x), r => p.Backward(r), () => p.Output, p.GradientOf("x"));
    }

    [TestMethod]
    public void EmbeddingWithPositions()
    {
        var random = new Random(5);
        var p = new EmbeddingModel.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(p, seed: 2);
        var ids = RandomData.Tokens(random, Batch * 5, 7);
        var r = RandomData.Doubles(random, Batch * 20);
        var y = new double[r.Length];
        double Objective()
        {
            p.Forward(ids);
            p.Read(p.Output, y);
            return RandomData.Dot(y, r);
        }
        new GradientChecker(p, Objective, () => { p.Forward(ids); p.Backward(r); }).Check();
    }

    [TestMethod]
    public void CrossEntropy()
    {
        var random = new Random(9);
        var p = new CrossEntropyModel.Compiled<double>(new CpuOps<double>(), Batch);
        var logits = RandomData.Doubles(random, Batch * 35, scale: 2);
        var targets = RandomData.Tokens(random, Batch * 5, 7);
        const double scale = 0.75; // the backward's scale (1/GAS × loss scale) must multiply the gradient
        new GradientChecker(p, () => scale * p.Forward(logits, targets), () => { p.Forward(logits, targets); p.Backward(scale); })
            .WithInput("logits", logits, p.GradientOf("logits")).Check();
    }

    [TestMethod]
    public void TwoBlockGptWithTiedHead()
    {
        var random = new Random(13);
        var p = new TwoBlockGpt.Compiled<double>(new CpuOps<double>(), Batch);
        RandomData.Parameters(p, seed: 17);
        var ids = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);
        var targets = RandomData.Tokens(random, Batch * TwoBlockGpt.Context, TwoBlockGpt.Vocabulary);

        // The head is tied: only one tokens.weight exists, and it must collect both the embedding and the head gradient.
        Assert.AreEqual(1, CountSlots(p.Layout, "tokens.weight"));
        Assert.AreEqual(0, CountSlots(p.Layout, "head"));
        Assert.AreEqual(2 * 12 + 2 + 2, p.Layout.Slots.Count, "2 embeddings + 12 tensors per block + final norm");

        double worst = new GradientChecker(p, () => p.Forward(ids, targets), () => { p.Forward(ids, targets); p.Backward(1.0); }).Check();
        Console.WriteLine($"two-block GPT: worst relative gradient error {worst:E2} over {p.Layout.ParameterCount} parameters");
    }

    private static int CountSlots(ParameterLayout layout, string name)
    {
        int count = 0;
        foreach (var slot in layout.Slots) count += slot.Name.Contains(name) ? 1 : 0;
        return count;
    }
}
