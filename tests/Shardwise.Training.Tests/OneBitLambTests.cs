using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;
using static Shardwise.Training.Tests.OneBitTestData;

namespace Shardwise.Training.Tests;

/// <summary>
/// <see cref="OneBitLamb"/> against a float64 rank-by-rank simulation of DeepSpeed's OnebitLamb: the warm-up's Lamb
/// steps and averaged trust ratios, then the compressed stage — momentum averaged (the compression simulated by
/// <see cref="ReferenceCompression"/>), gradient rebuilt into the fresh variance, the factor clamped to its range and to
/// ±factor_threshold of the last — on 1 and 3 ranks with different gradients per rank; and the config section.
/// </summary>
[TestClass]
public sealed class OneBitLambTests
{
    private const double LearningRate = 1e-2, Decay = 0.01, CoeffBeta = 0.5;

    private static OptimizerConfig LambConfig(long freezeStep, double weightDecay = Decay) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": 1,
          "optimizer": { "type": "OneBitLamb", "params": { "lr": 1e-2, "weight_decay": {{weightDecay}}, "bias_correction": false, "max_coeff": 0.3,
                         "min_coeff": 0.01, "freeze_step": {{freezeStep}}, "coeff_beta": {{CoeffBeta}}, "factor_max": 4.0, "factor_min": 0.5,
                         "factor_threshold": 0.1 } } }
        """).Config.Optimizer!;

    /// <summary>
    /// Steps <paramref name="steps"/> times on <paramref name="ranks"/> ranks (freeze after <paramref name="freeze"/>) and
    /// compares the parameters, the frozen coefficients and the last factors of every rank with the simulation's.
    /// </summary>
    [TestMethod]
    [DataRow(1, Decay)]
    [DataRow(1, 0.0)]
    [DataRow(3, Decay)]
    public void EveryStepIsTheSimulatedDeepSpeedStep(int ranks, double weightDecay)
    {
        const int freeze = 3, steps = 9;
        var config = LambConfig(freeze, weightDecay);
        var initial = RandomValues(Length, 3);
        // Larger gradients after the freeze make the fresh variance outgrow the frozen one, so the factor moves.
        var gradients = Enumerable.Range(0, steps).Select(step => Enumerable.Range(0, ranks)
            .Select(rank => RandomValues(Length, 50 + 10 * step + rank, step < freeze ? 0.1f : 0.1f + 0.15f * (step - freeze))).ToArray()).ToArray();
        var averaged = gradients.Select(step => Enumerable.Range(0, Length).Select(i => step.Average(r => r[i])).ToArray()).ToArray();
        float[] GradientFor(int step, int rank) => step < freeze ? averaged[step] : gradients[step][rank];

        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var adam = new AdamOptimizer(Length, AdamOptions.FromConfig(config));
            var lamb = new OneBitLamb(adam, config.OneBitLamb!, communicator, Tensors);
            var p = initial.ToArray();
            for (int step = 0; step < steps; step++)
            {
                Assert.AreEqual(step >= freeze, lamb.Compressing, $"step {step}");
                lamb.Step(p, GradientFor(step, communicator.Rank), LearningRate);
            }
            return (P: p, Frozen: lamb.FrozenCoefficients.ToArray(), Factors: lamb.LastFactors.ToArray(), Ratios: lamb.TrustRatios.ToArray());
        }, TimeSpan.FromMinutes(1));

        var reference = new Simulation(ranks, initial, weightDecay);
        for (int step = 0; step < steps; step++)
        {
            if (step < freeze) reference.WarmUp(averaged[step], lastWarmUp: step == freeze - 1);
            else reference.Compressed(gradients[step]);
        }

        Assert.IsTrue(reference.LastFactors.Any(f => Math.Abs(f - 1) > 0.05), $"the factor must move: {string.Join(", ", reference.LastFactors)}");
        Assert.IsTrue(reference.ThresholdClamps > 0 && reference.FreeFactors > 0,
            $"both a factor clamped by factor_threshold ({reference.ThresholdClamps}) and one inside it ({reference.FreeFactors}) are exercised");
        for (int rank = 0; rank < ranks; rank++)
        {
            var (p, frozen, factors, ratios) = results[rank];
            CollectionAssert.AreEqual(results[0].P, p, $"rank {rank} holds other parameters than rank 0");
            for (int t = 0; t < Tensors.Length; t++)
            {
                Assert.AreEqual(reference.Frozen[t], frozen[t], 1e-6 * reference.Frozen[t], $"rank {rank}: frozen coefficient of tensor {t}");
                Assert.AreEqual(reference.LastFactors[t], factors[t], 1e-5, $"rank {rank}: last factor of tensor {t}");
                Assert.AreEqual(reference.Frozen[t] * reference.LastFactors[t], ratios[t], 1e-5, $"rank {rank}: trust ratio of tensor {t}");
            }
            for (int i = 0; i < Length; i++)
                Assert.AreEqual(reference.P[i], p[i], 1e-4 * Math.Max(1, Math.Abs(reference.P[i])), $"rank {rank}, element {i}");
        }
    }

    /// <summary>
    /// DeepSpeed's OnebitLamb written out for every rank at once: the momenta in float with the implementation's
    /// expressions (so the compressed signs are the same), everything else in float64.
    /// </summary>
    private sealed class Simulation(int ranks, float[] initial, double decay)
    {
        private const float Beta1 = 0.9f, OneMinusBeta1 = (float)(1.0 - 0.9);
        private const double Beta2 = 0.999, Eps = 1e-8, MaxCoeff = 0.3, MinCoeff = 0.01, FactorMax = 4.0, FactorMin = 0.5, Threshold = 0.1;
        private readonly ReferenceCompression _compression = new(ranks, Tensors);
        private readonly float[][] _m = Enumerable.Range(0, ranks).Select(_ => new float[Length]).ToArray();
        private readonly double[] _v = new double[Length], _fresh = new double[Length];

        public double[] P { get; } = initial.Select(x => (double)x).ToArray();
        public double[] Frozen { get; } = new double[Tensors.Length];
        public double[] LastFactors { get; } = Enumerable.Repeat(1.0, Tensors.Length).ToArray();
        public int ThresholdClamps { get; private set; }
        public int FreeFactors { get; private set; }

        public void WarmUp(float[] g, bool lastWarmUp)
        {
            foreach (var m in _m)
                for (int i = 0; i < Length; i++) m[i] = Beta1 * m[i] + OneMinusBeta1 * g[i];
            for (int i = 0; i < Length; i++) _v[i] = Beta2 * _v[i] + (1 - Beta2) * g[i] * (double)g[i];
            for (int t = 0; t < Tensors.Length; t++)
            {
                var (offset, n) = Tensors[t].GetOffsetAndLength(Length);
                var update = Enumerable.Range(offset, n).Select(i => _m[0][i] / (Math.Sqrt(_v[i]) + Eps) + decay * P[i]).ToArray();
                double weightNorm = Norm(P.Skip(offset).Take(n)), updateNorm = Norm(update);
                double coeff = weightNorm == 0 || updateNorm == 0 ? 1 : Math.Clamp(weightNorm / updateNorm, MinCoeff, MaxCoeff);
                if (coeff != 1) Frozen[t] = CoeffBeta * Frozen[t] + (1 - CoeffBeta) * coeff;
                for (int k = 0; k < n; k++) P[offset + k] -= LearningRate * coeff * update[k];
            }
            if (lastWarmUp) _v.CopyTo(_fresh, 0);
        }

        public void Compressed(float[][] perRank)
        {
            var last = _m[0].ToArray();
            for (int rank = 0; rank < ranks; rank++)
                for (int i = 0; i < Length; i++) _m[rank][i] = Beta1 * _m[rank][i] + OneMinusBeta1 * perRank[rank][i];
            if (ranks > 1)
            {
                var average = _compression.Average(_m);
                foreach (var m in _m) average.CopyTo(m, 0);
            }
            var mean = _m[0];
            for (int t = 0; t < Tensors.Length; t++)
            {
                var (offset, n) = Tensors[t].GetOffsetAndLength(Length);
                double maxRatio = double.NegativeInfinity, preliminarySquares = 0, updateSquares = 0;
                var update = new double[n];
                for (int k = 0; k < n; k++)
                {
                    int i = offset + k;
                    double gradient = (mean[i] - 0.9 * last[i]) / (1 - 0.9);
                    _fresh[i] = Beta2 * _fresh[i] + (1 - Beta2) * gradient * gradient;
                    double denominator = Math.Sqrt(_v[i]) + Eps, preliminary = mean[i] / denominator;
                    update[k] = preliminary + decay * P[i];
                    preliminarySquares += preliminary * preliminary;
                    updateSquares += update[k] * update[k];
                    maxRatio = Math.Max(maxRatio, denominator / (Math.Sqrt(_fresh[i]) + Eps));
                }
                double factor = maxRatio;
                if (decay > 0)
                {
                    double share = Math.Min(1.0, Math.Sqrt(preliminarySquares) / Math.Sqrt(updateSquares));
                    factor = factor * share + (1 - share);
                }
                factor = Math.Min(Math.Max(factor, FactorMin), FactorMax);
                double high = LastFactors[t] * (1 + Threshold), low = LastFactors[t] * (1 - Threshold);
                if (factor > high || factor < low) ThresholdClamps++;
                else FreeFactors++;
                factor = factor > high ? high : factor < low ? low : factor;
                LastFactors[t] = factor;
                for (int k = 0; k < n; k++) P[offset + k] -= LearningRate * Frozen[t] * factor * update[k];
            }
        }

        private static double Norm(System.Collections.Generic.IEnumerable<double> values) => Math.Sqrt(values.Sum(x => x * x));
    }

    [TestMethod]
    public void TheWarmUpIsLambWithoutBiasCorrectionBitForBit()
    {
        var oneBit = LambConfig(freezeStep: 10);
        var lambOptions = AdamOptions.FromConfig(DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "Lamb", "params": { "lr": 1e-2, "weight_decay": 0.01, "bias_correction": false,
              "max_coeff": 0.3, "min_coeff": 0.01 } } }
            """).Config.Optimizer!);
        var lamb = new AdamOptimizer(Length, lambOptions, Tensors);
        var oneBitLamb = new OneBitLamb(new AdamOptimizer(Length, AdamOptions.FromConfig(oneBit)), oneBit.OneBitLamb!, new SingleProcessCommunicator(), Tensors);
        var (p, q) = (RandomValues(Length, 1), RandomValues(Length, 1));
        (p[172], q[172]) = (0, 0); // the last tensor: zero, with no gradient, so its trust ratio is exactly 1
        for (int step = 0; step < 6; step++)
        {
            var g = RandomValues(Length, 20 + step, 0.1f);
            g[172] = 0;
            lamb.Step(p, g, LearningRate);
            oneBitLamb.Step(q, g, LearningRate);
        }
        CollectionAssert.AreEqual(p, q);
        Assert.IsFalse(oneBitLamb.Compressing);
        Assert.IsTrue(oneBitLamb.FrozenCoefficients.Take(3).All(c => c > 0), "the trust ratios are being averaged");
        Assert.AreEqual(0, oneBitLamb.FrozenCoefficients[3], "a ratio of exactly 1 (a zero tensor) is left out of the average, as in DeepSpeed");
        CollectionAssert.AreEqual(new float[Length], oneBitLamb.FreshVariance, "the fresh variance is copied at the freeze step, not before");
    }

    [TestMethod]
    public void TheFreshVarianceStartsAsTheFrozenOne()
    {
        var config = LambConfig(freezeStep: 2);
        var adam = new AdamOptimizer(Length, AdamOptions.FromConfig(config));
        var lamb = new OneBitLamb(adam, config.OneBitLamb!, new SingleProcessCommunicator(), Tensors);
        var p = RandomValues(Length, 4);
        lamb.Step(p, RandomValues(Length, 5, 0.1f), LearningRate);
        lamb.Step(p, RandomValues(Length, 6, 0.1f), LearningRate);
        CollectionAssert.AreEqual(adam.State.ExpAvgSq, lamb.FreshVariance);
        var frozen = adam.State.ExpAvgSq.ToArray();
        lamb.Step(p, RandomValues(Length, 7, 0.3f), LearningRate);
        CollectionAssert.AreEqual(frozen, adam.State.ExpAvgSq, "the variance is frozen");
        CollectionAssert.AreNotEqual(frozen, lamb.FreshVariance, "the fresh variance goes on");
    }

    [TestMethod]
    public void ConfigReadsDeepSpeedsBertExampleAndChecksItsRanges()
    {
        var corpus = System.IO.Path.Combine(TestPaths.DsConfigs, "04_dse_bingbert_onebitlamb_nccl.json");
        var parsed = DeepSpeedConfig.Load(corpus);
        var optimizer = parsed.Config.Optimizer!;
        Assert.AreEqual(OptimizerType.OneBitLamb, optimizer.Type);
        var settings = optimizer.OneBitLamb!;
        Assert.AreEqual(1000, settings.Compression.FreezeStep);
        Assert.AreEqual((0.9, 4.0, 0.5, 0.1), (settings.CoeffBeta, settings.FactorMax, settings.FactorMin, settings.FactorThreshold));
        Assert.AreEqual((0.3, 0.01), (settings.Coefficients.MaxCoeff, settings.Coefficients.MinCoeff));
        Assert.IsFalse(optimizer.BiasCorrection);

        string Error(string parameters, string zero = "") => Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse($$"""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "OneBitLamb", "params": { "freeze_step": 100, {{parameters}} } } {{zero}} }
            """)).Message;
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "OneBitLamb", "params": { "freeze_step": 0 } } }
            """)).Message, "$.optimizer.params.freeze_step: 0 leaves no warm-up to average the trust ratio over");
        StringAssert.Contains(Error("\"coeff_beta\": 1.0"), "$.optimizer.params.coeff_beta: 1 is out of range: must be in [0, 1)");
        StringAssert.Contains(Error("\"factor_min\": 0"), "$.optimizer.params.factor_min: 0 is out of range: must be > 0");
        StringAssert.Contains(Error("\"factor_max\": 0.4"), "$.optimizer.params.factor_max: 0.4 is out of range: must be >= factor_min (0.5)");
        StringAssert.Contains(Error("\"factor_threshold\": -0.1"), "$.optimizer.params.factor_threshold: -0.1 is out of range");
        StringAssert.Contains(Error("\"lr\": 1e-3", ", \"zero_optimization\": { \"stage\": 2 }"), "$.zero_optimization.stage: 2 partitions the optimizer over ranks, and OneBitLamb");

        var warned = DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "OneBitLamb", "params": { "freeze_step": 5, "coeff_beta": 0.9, "eps_inside_sqrt": true, "bias_correction": true } } }
            """);
        Assert.IsTrue(warned.Warnings.Any(w => w.StartsWith("$.optimizer.params.coeff_beta: 0.9 averages the trust ratio over about 10 steps, more than freeze_step (5)", StringComparison.Ordinal)), string.Join("\n", warned.Warnings));
        Assert.IsTrue(warned.Warnings.Any(w => w.StartsWith("$.optimizer.params.eps_inside_sqrt: true has no effect", StringComparison.Ordinal)));
        Assert.IsTrue(warned.Warnings.Any(w => w.StartsWith("$.optimizer.params.bias_correction: true has no effect: OneBitLamb's update", StringComparison.Ordinal)));
    }
}
