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
/// <see cref="ZeroOneAdam"/> against DeepSpeed's ZeroOneAdam written out: on one rank in float64 (the variance interval
/// doubling every var_update_scaler full steps, the local-step interval doubling up to its clipper, the synchronisation
/// that undoes the local updates and applies their average); on three ranks against a rank-by-rank simulation with the
/// compression simulated (<see cref="ReferenceCompression"/>), bit for bit, the ranks apart between synchronisations and
/// together again (to rounding) after each; and the config section.
/// </summary>
[TestClass]
public sealed class ZeroOneAdamTests
{
    private const int Steps = 18;
    private const float LearningRate = 1e-2f, Decay = 0.01f;

    // var_update_scaler 2 and local_step_scaler 3 so that both intervals double within the test's 18 steps.
    private static OptimizerConfig Config(long varFreezeStep = 6) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": 1,
          "optimizer": { "type": "ZeroOneAdam", "params": { "lr": 1e-2, "weight_decay": 0.01, "bias_correction": false, "var_freeze_step": {{varFreezeStep}},
                         "var_update_scaler": 2, "local_step_scaler": 3, "local_step_clipper": 4, "cuda_aware": false, "comm_backend_name": "nccl" } } }
        """).Config.Optimizer!;

    private static float[] Gradient(int step, int rank) => RandomValues(Length, 100 * step + rank, 0.1f);

    [TestMethod]
    public void OnOneRankItIsDeepSpeedsAlgorithmInFloat64()
    {
        var config = Config();
        var adam = new AdamOptimizer(Length, AdamOptions.FromConfig(config));
        var zeroOne = new ZeroOneAdam(adam, config.ZeroOneAdam!, new SingleProcessCommunicator(), Tensors);
        var p = RandomValues(Length, 1);
        var (rp, rm, rv, ru) = (p.Select(x => (double)x).ToArray(), new double[Length], new double[Length], new double[Length]);
        long varInterval = 1, varCounter = 0, localInterval = 1, localCounter = 0;
        double lrs = 0;
        var fullSteps = new System.Collections.Generic.List<int>();
        var syncSteps = new System.Collections.Generic.List<int>();
        for (int step = 1; step <= Steps; step++)
        {
            var g = Gradient(step, 0);
            zeroOne.Step(p, g, LearningRate);

            bool frozen = step - 1 > 6;
            double Update(int i) => rm[i] / (Math.Sqrt(rv[i]) + 1e-8) + Decay * rp[i];
            if (!frozen)
            {
                bool full = step % varInterval == 0;
                if (full) fullSteps.Add(step);
                for (int i = 0; i < Length; i++)
                {
                    if (full) rv[i] = 0.999 * rv[i] + 0.001 * g[i] * (double)g[i];
                    rm[i] = 0.9 * rm[i] + 0.1 * g[i];
                    rp[i] -= LearningRate * Update(i);
                }
                if (full && ++varCounter == 2) (varCounter, varInterval) = (0, varInterval * 2);
            }
            else
            {
                lrs += LearningRate;
                for (int i = 0; i < Length; i++)
                {
                    rm[i] = 0.9 * rm[i] + 0.1 * g[i];
                    double update = LearningRate * Update(i);
                    rp[i] -= update;
                    ru[i] -= update;
                }
                if (step % localInterval == 0)
                {
                    syncSteps.Add(step);
                    for (int i = 0; i < Length; i++)
                    {
                        // One rank: undoing the local updates and applying their "average" gives the same weights back.
                        rm[i] = -ru[i] * (Math.Sqrt(rv[i]) + 1e-8) / lrs;
                        ru[i] = 0;
                    }
                    lrs = 0;
                }
                if (++localCounter == 3) (localCounter, localInterval) = (0, Math.Min(4, localInterval * 2));
            }
        }

        CollectionAssert.AreEqual(new[] { 1, 2, 4, 6 }, fullSteps, "variance steps: interval 1 twice, then 2 twice");
        CollectionAssert.AreEqual(new[] { 8, 9, 10, 12, 16 }, syncSteps, "synchronisations: interval 1 for 3 local steps (8–10), 2 for the next 3 (11–13), then 4");
        Assert.AreEqual(4, zeroOne.VarInterval);
        Assert.AreEqual(4, zeroOne.LocalStepInterval);
        for (int i = 0; i < Length; i++)
        {
            Assert.AreEqual(rp[i], p[i], 1e-4 * Math.Max(1, Math.Abs(rp[i])), $"parameter {i}");
            Assert.AreEqual(rm[i], adam.State.ExpAvg[i], 1e-4 * Math.Max(1e-3, Math.Abs(rm[i])), $"momentum {i}");
        }
    }

    [TestMethod]
    public void OnThreeRanksItIsTheRankByRankSimulationBitForBit()
    {
        const int ranks = 3;
        var config = Config();
        var initial = RandomValues(Length, 2);
        var results = InProcessGroup.Run(ranks, communicator =>
        {
            var adam = new AdamOptimizer(Length, AdamOptions.FromConfig(config));
            var zeroOne = new ZeroOneAdam(adam, config.ZeroOneAdam!, communicator, Tensors);
            var p = initial.ToArray();
            var trace = new float[Steps][];
            for (int step = 1; step <= Steps; step++)
            {
                // What the engine hands over: the average over the ranks, or this rank's own gradient.
                var g = zeroOne.LocalGradients ? Gradient(step, communicator.Rank)
                    : Enumerable.Range(0, Length).Select(i => Enumerable.Range(0, ranks).Average(r => Gradient(step, r)[i])).ToArray();
                zeroOne.Step(p, g, LearningRate);
                trace[step - 1] = p.ToArray();
            }
            return trace;
        }, TimeSpan.FromMinutes(1));

        var simulated = new Simulation(ranks, initial).Run();
        for (int step = 1; step <= Steps; step++)
            for (int rank = 0; rank < ranks; rank++)
                CollectionAssert.AreEqual(simulated[rank][step - 1], results[rank][step - 1], $"rank {rank} after step {step}");
        // p − u restores the last synchronised weights up to the rounding of the local steps, so after a synchronisation
        // the ranks agree to a few ulps (as in DeepSpeed); between synchronisations each steps on its own gradients.
        double Apart(int step) => Enumerable.Range(0, Length).Max(i => Math.Abs(results[0][step - 1][i] - results[2][step - 1][i]));
        foreach (int step in new[] { 8, 9, 10, 12, 16 })
            Assert.IsTrue(Apart(step) < 1e-6, $"the ranks agree after the synchronisation at step {step}: {Apart(step):E2} apart");
        foreach (int step in new[] { 11, 13, 14, 15, 17 })
            Assert.IsTrue(Apart(step) > 1e-4, $"between synchronisations (step {step}) each rank steps on its own: {Apart(step):E2} apart");
    }

    /// <summary>Every rank's optimizer in float with the implementation's expressions, so the compressed signs agree.</summary>
    private sealed class Simulation(int ranks, float[] initial)
    {
        private const float Beta1 = 0.9f, OneMinusBeta1 = (float)(1.0 - 0.9), Beta2 = 0.999f, OneMinusBeta2 = (float)(1.0 - 0.999), Eps = 1e-8f;

        public float[][][] Run()
        {
            var p = Enumerable.Range(0, ranks).Select(_ => initial.ToArray()).ToArray();
            var m = Enumerable.Range(0, ranks).Select(_ => new float[Length]).ToArray();
            var v = new float[Length];
            var u = Enumerable.Range(0, ranks).Select(_ => new float[Length]).ToArray();
            var compression = new ReferenceCompression(ranks, Tensors);
            var trace = Enumerable.Range(0, ranks).Select(_ => new float[Steps][]).ToArray();
            long varInterval = 1, varCounter = 0, localInterval = 1, localCounter = 0;
            double lrs = 0;
            float Update(int rank, int i) => m[rank][i] / (MathF.Sqrt(v[i]) + Eps) + Decay * p[rank][i];
            for (int step = 1; step <= Steps; step++)
            {
                var g = Enumerable.Range(0, ranks).Select(r => Gradient(step, r)).ToArray();
                if (step - 1 <= 6)
                {
                    bool full = step % varInterval == 0;
                    float[] shared = full ? Enumerable.Range(0, Length).Select(i => Enumerable.Range(0, ranks).Average(r => g[r][i])).ToArray()
                        : compression.Average(g);
                    for (int r = 0; r < ranks; r++)
                        for (int i = 0; i < Length; i++)
                        {
                            if (full && r == 0) v[i] = Beta2 * v[i] + OneMinusBeta2 * shared[i] * shared[i];
                            m[r][i] = Beta1 * m[r][i] + OneMinusBeta1 * shared[i];
                        }
                    for (int r = 0; r < ranks; r++)
                        for (int i = 0; i < Length; i++) p[r][i] -= LearningRate * Update(r, i);
                    if (full && ++varCounter == 2) (varCounter, varInterval) = (0, varInterval * 2);
                    if (step > 6) compression = new ReferenceCompression(ranks, Tensors); // the errors reset at the freeze
                }
                else
                {
                    lrs += LearningRate;
                    for (int r = 0; r < ranks; r++)
                        for (int i = 0; i < Length; i++)
                        {
                            m[r][i] = Beta1 * m[r][i] + OneMinusBeta1 * g[r][i];
                            float delta = LearningRate * Update(r, i);
                            p[r][i] -= delta;
                            u[r][i] -= delta;
                        }
                    if (step % localInterval == 0)
                    {
                        for (int r = 0; r < ranks; r++)
                            for (int i = 0; i < Length; i++)
                            {
                                p[r][i] -= u[r][i];
                                u[r][i] *= MathF.Sqrt(v[i]) + Eps;
                            }
                        var average = compression.Average(u);
                        float sum = (float)lrs;
                        for (int r = 0; r < ranks; r++)
                            for (int i = 0; i < Length; i++)
                            {
                                m[r][i] = -(average[i] / sum);
                                p[r][i] += average[i] / (MathF.Sqrt(v[i]) + Eps);
                                u[r][i] = 0;
                            }
                        lrs = 0;
                    }
                    if (++localCounter == 3) (localCounter, localInterval) = (0, Math.Min(4, localInterval * 2));
                }
                for (int r = 0; r < ranks; r++) trace[r][step - 1] = p[r].ToArray();
            }
            return trace;
        }
    }

    [TestMethod]
    public void ConfigReadsZeroOneAdamAndChecksIt()
    {
        var optimizer = Config(varFreezeStep: 23000);
        Assert.AreEqual(OptimizerType.ZeroOneAdam, optimizer.Type);
        Assert.AreEqual((23000L, 2L, 3L, 4L), (optimizer.ZeroOneAdam!.VarFreezeStep, optimizer.ZeroOneAdam.VarUpdateScaler,
            optimizer.ZeroOneAdam.LocalStepScaler, optimizer.ZeroOneAdam.LocalStepClipper));
        var defaults = DeepSpeedConfig.Parse("""{ "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "ZeroOneAdam", "params": {} } }""").Config.Optimizer!.ZeroOneAdam!;
        Assert.AreEqual((100000L, 16L, 32678L, 16L), (defaults.VarFreezeStep, defaults.VarUpdateScaler, defaults.LocalStepScaler, defaults.LocalStepClipper));

        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "ZeroOneAdam", "params": { "var_update_scaler": 0 } } }
            """)).Message, "$.optimizer.params.var_update_scaler");
        StringAssert.Contains(Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "ZeroOneAdam", "params": {} }, "zero_optimization": { "stage": 1 } }
            """)).Message, "$.zero_optimization.stage: 1 partitions the optimizer over ranks, and ZeroOneAdam");
        var warned = DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "ZeroOneAdam", "params": { "bias_correction": true, "freeze_step": 10 } } }
            """);
        Assert.IsTrue(warned.Warnings.Any(w => w.StartsWith("$.optimizer.params.bias_correction: true has no effect: ZeroOneAdam's update", StringComparison.Ordinal)));
        Assert.IsTrue(warned.Warnings.Any(w => w.StartsWith("$.optimizer.params.freeze_step:", StringComparison.Ordinal)), "OneBitAdam's key is not ZeroOneAdam's: " + string.Join("\n", warned.Warnings));
    }
}
