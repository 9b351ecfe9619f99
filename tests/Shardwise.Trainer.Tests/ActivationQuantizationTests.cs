using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Ops;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// compression_training.activation_quantization: the CPU backend multiplies Q(x) for the Linear layers the groups match
/// (the weight gradient from Q(x) too, the input gradient straight through), Q is DeepSpeed's per-token grid, and a run
/// quantizes from its schedule_offset on.
/// </summary>
[TestClass]
public sealed class ActivationQuantizationTests
{
    private const int Rows = 3, In = 5, Out = 4;

    /// <summary>Rounds to quarters, for the Linear whose weight sits at offset 0 only.</summary>
    private sealed class Quarters : IActivationQuantizer
    {
        public bool Quantizes(Slice weight) => weight.Arena == Arena.Parameters && weight.Offset == 0;

        public void Quantize(Slice weight, ReadOnlySpan<float> x, Span<float> into, int rows, int inDim)
        {
            for (int i = 0; i < x.Length; i++) into[i] = MathF.Round(x[i] * 4) / 4;
        }

        public (int Bits, bool Asymmetric) GridOf(Slice weight) => throw new NotSupportedException("a host-only test quantizer");
    }

    private static float[] Random(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(2 * random.NextDouble() - 1)).ToArray();
    }

    /// <summary>y, dx and dW of one Linear at weight offset <paramref name="weightOffset"/>, through CpuOps.</summary>
    private static (float[] Y, float[] Dx, float[] Dw) RunLinear(IActivationQuantizer? quantizer, float[] x, float[] w, float[] dy, long weightOffset)
    {
        var ops = new CpuOps<float> { ActivationQuantizer = quantizer };
        ops.Allocate(Arena.Parameters, weightOffset + w.Length);
        ops.Allocate(Arena.Gradients, weightOffset + w.Length);
        ops.Allocate(Arena.Activations, x.Length * 2 + dy.Length * 2);
        var weight = new Slice(Arena.Parameters, weightOffset, w.Length);
        var xs = new Slice(Arena.Activations, 0, x.Length);
        var ys = new Slice(Arena.Activations, x.Length, dy.Length);
        var dys = new Slice(Arena.Activations, x.Length + dy.Length, dy.Length);
        var dxs = new Slice(Arena.Activations, x.Length + 2 * dy.Length, x.Length);
        ops.Load(w, weight);
        ops.Load(x, xs);
        ops.Load(dy, dys);
        ops.Linear(xs, weight, null, ys, Rows, In, Out);
        ops.LinearBackward(xs, weight, dys, dxs, new Slice(Arena.Gradients, weightOffset, w.Length), null, Rows, In, Out, accumulate: false);
        return (ops.View(Arena.Activations).Slice(x.Length, dy.Length).ToArray(), ops.View(Arena.Activations).Slice(x.Length + 2 * dy.Length, x.Length).ToArray(),
                ops.View(Arena.Gradients).Slice((int)weightOffset, w.Length).ToArray());
    }

    [TestMethod]
    public void TheLinearMultipliesQx_ItsWeightGradientUsesQx_AndDxPassesStraightThrough()
    {
        float[] x = Random(Rows * In, 1), w = Random(Out * In, 2), dy = Random(Rows * Out, 3);
        float[] qx = x.Select(v => MathF.Round(v * 4) / 4).ToArray();
        Assert.IsTrue(qx.Zip(x).Count(p => p.First != p.Second) > 10, "the quantizer changes x");

        var plain = RunLinear(null, x, w, dy, 0);
        var onQx = RunLinear(null, qx, w, dy, 0);
        var quantized = RunLinear(new Quarters(), x, w, dy, 0);
        CollectionAssert.AreEqual(onQx.Y, quantized.Y, "y = Q(x)·Wᵀ");
        CollectionAssert.AreEqual(onQx.Dw, quantized.Dw, "dW = dyᵀ·Q(x)");
        CollectionAssert.AreEqual(plain.Dx, quantized.Dx, "dx = dy·W, straight through Q");
        CollectionAssert.AreNotEqual(plain.Y, quantized.Y);

        var otherLayer = RunLinear(new Quarters(), x, w, dy, 7);
        CollectionAssert.AreEqual(plain.Y, otherLayer.Y, "a Linear the quantizer does not cover multiplies x");
    }

    [TestMethod]
    public void EachTokenTakesDeepSpeedsGridOverItsOwnRange()
    {
        var layout = new ParameterLayout([new ParameterSlot("fc.weight", [Out, In], 0, Out * In, ParameterInit.Normal)], Out * In);
        foreach (var (type, bits) in new[] { ("symmetric", 4), ("asymmetric", 8) })
        {
            var config = DeepSpeedConfig.Parse("""
                {"train_batch_size": 8, "compression_training": {"activation_quantization": {
                   "shared_parameters": {"enabled": true, "quantization_type": "TYPE", "schedule_offset": 0},
                   "different_groups": {"aq1": {"params": {"bits": BITS}, "modules": ["fc"]}}}}}
                """.Replace("TYPE", type).Replace("BITS", bits.ToString(System.Globalization.CultureInfo.InvariantCulture))).Config;
            var quantizer = ActivationQuantizer.For(config, layout)!;
            float[] x = Random(Rows * In, 4).Select((v, i) => v * (1 + i / In)).ToArray(); // each row a different range
            var q = new float[x.Length];
            quantizer.Quantize(new Slice(Arena.Parameters, 0, Out * In), x, q, Rows, In);

            // DeepSpeed's SymQuantizer / AsymQuantizer with num_groups = rows, in double arithmetic.
            double levels = Math.Pow(2, bits);
            for (int r = 0; r < Rows; r++)
            {
                var row = x.Skip(r * In).Take(In).Select(v => (double)v).ToArray();
                for (int c = 0; c < In; c++)
                {
                    double expected;
                    if (type == "symmetric")
                    {
                        double scale = 2 * row.Max(Math.Abs) / levels;
                        expected = Math.Clamp(Math.Round(row[c] / scale), -levels / 2, levels / 2 - 1) * scale;
                    }
                    else
                    {
                        double scale = (row.Max() - row.Min()) / levels, zero = Math.Round(row.Min() / scale) * scale;
                        expected = Math.Clamp(Math.Round((row[c] - zero) / scale), 0, levels - 1) * scale + zero;
                    }
                    Assert.AreEqual(expected, q[r * In + c], 1e-5 * Math.Abs(expected) + 1e-6, $"{type} {bits} bits, row {r} column {c}");
                }
            }
            Assert.IsTrue(q.Zip(x).Count(p => p.First != p.Second) > 5, $"{type}: some values moved onto the grid");
        }
    }

    [TestMethod]
    public void ATrainingRunQuantizesFromTheOffset_OnEveryZeroStageBelowThree()
    {
        var root = TrainerRun.TempDirectory();
        string Section(int stage) => """
            "zero_optimization": { "stage": STAGE },
            "compression_training": { "activation_quantization": {
              "shared_parameters": { "enabled": true, "quantization_type": "asymmetric", "schedule_offset": 2 },
              "different_groups": { "aq1": { "params": { "bits": 4 }, "modules": ["expand", "contract"] } } } },
            """.Replace("STAGE", stage.ToString(System.Globalization.CultureInfo.InvariantCulture));
        string plain = Path.Combine(root, "plain");
        TrainerRun.Succeed("train", "--config", TrainerRun.WriteSmallConfig(root, "plain.json", ""), "--steps", "5", "--output", plain, "--eval-interval", "0");
        var plainLosses = TrainerRun.MetricsColumn(plain, "loss");
        foreach (int stage in new[] { 0, 2 })
        {
            string run = Path.Combine(root, $"aq{stage}");
            var output = TrainerRun.Succeed("train", "--config", TrainerRun.WriteSmallConfig(root, $"aq{stage}.json", Section(stage)), "--steps", "5", "--output", run, "--eval-interval", "0");
            StringAssert.Contains(output, "compression: activation quantization (asymmetric, each token's range, from update 2) of 8 Linear layer(s): blocks.0.expand 4 bits, blocks.0.contract 4 bits,");
            var losses = TrainerRun.MetricsColumn(run, "loss");
            // Updates 0 and 1 run on x; from the third forward on, the MLP multiplies 4-bit inputs.
            Assert.AreEqual(plainLosses[0], losses[0], $"stage {stage}: the first forward is the plain run's");
            Assert.AreEqual(plainLosses[1], losses[1], 1e-6, $"stage {stage}: the second forward is the plain run's");
            Assert.AreNotEqual(plainLosses[2], losses[2], $"stage {stage}: from update 2 the MLP's inputs are quantized");
            Assert.IsTrue(Math.Abs(plainLosses[2] - losses[2]) < 0.5, $"stage {stage}: 4-bit inputs still compute nearly the same loss ({losses[2]:F4} against {plainLosses[2]:F4})");
        }
    }

    [TestMethod]
    public void ABackendWithoutAQuantizerRefusesOne_AndStaticRangesAreRefused()
    {
        ITensorOps<float> other = new FusedReferenceOps();
        var refused = Assert.ThrowsExactly<NotSupportedException>(() => other.ActivationQuantizer = new Quarters());
        StringAssert.Contains(refused.Message, "activation quantization needs a backend that quantizes Linear inputs (CpuOps, CudaOps); FusedReferenceOps has none");
        other.ActivationQuantizer = null;

        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            {"train_batch_size": 8, "compression_training": {"activation_quantization": {
               "shared_parameters": {"enabled": true, "range_calibration": "static"},
               "different_groups": {"aq1": {"params": {"bits": 6}}}}}}
            """));
        Assert.AreEqual(2, error.Errors.Count, error.Message);
        StringAssert.StartsWith(error.Errors[0], "$.compression_training.activation_quantization.shared_parameters.range_calibration: known DeepSpeed feature not supported by Shardwise yet: range_calibration \"static\"");
        StringAssert.StartsWith(error.Errors[1], "$.compression_training.activation_quantization.different_groups.aq1.params.bits: 6 bits: activation quantization takes 4 or 8");
    }

    [TestMethod]
    public void PlanPredictsTheScratchTheCpuBackendTakes()
    {
        var config = DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
              "compression_training": { "activation_quantization": {
                "shared_parameters": { "enabled": true, "schedule_offset": 0 },
                "different_groups": { "aq1": { "params": { "bits": 8 }, "modules": ["expand", "contract"] } } } } }
            """).Config;
        var (engine, next) = CompressionTrainingTests.Start(config, new Distributed.SingleProcessCommunicator());
        var (inputs, targets) = next();
        engine.Forward(inputs, targets);
        engine.Backward();
        engine.Step();
        long taken = ((CpuOps<float>)engine.Program.Ops).QuantizedInputScratchBytes;
        // The widest covered input is contract's 4·128 = 512 columns, over one sample's 64 tokens, in fp32.
        Assert.AreEqual(64L * 512 * sizeof(float), taken);
        Assert.AreEqual(taken, Training.Engine.MemoryPlan.QuantizedInputBytes(Examples.TinyGpt.ParameterLayout, config, 1, Examples.TinyGpt.SequenceLength, sizeof(float)));

        var root = TrainerRun.TempDirectory();
        string path = Path.Combine(root, "aq.json");
        File.WriteAllText(path, """
            { "train_micro_batch_size_per_gpu": 2, "bf16": { "enabled": true },
              "compression_training": { "activation_quantization": {
                "shared_parameters": { "enabled": true },
                "different_groups": { "aq1": { "params": { "bits": 8 }, "modules": ["expand", "contract"] } } } } }
            """);
        var plan = TrainerRun.Succeed("plan", "--config", path);
        StringAssert.Contains(plan, $"plus the quantized Linear inputs' device scratch (activation_quantization): {2 * 64 * 512 * 2:N0} bytes");
        StringAssert.Contains(plan, $"plus the quantized Linear inputs' scratch (activation_quantization): {2 * 64 * 512 * 4:N0} bytes");
    }
}
