using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Training.Compression;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;
using static Shardwise.Training.Tests.OneBitTestData;

namespace Shardwise.Training.Tests;

/// <summary>
/// 1-bit Adam's communication (<see cref="OneBitAllReduce"/>, <see cref="PairwiseAllToAll"/>) and its optimizer
/// (<see cref="OneBitAdam"/>) on in-process ranks, against a reference that simulates every rank's worker and server
/// step with plain arrays (no packing, no messages), against float64 Adam formulas, and against properties that do not
/// depend on either: every rank ends with the same values, error feedback makes the running mean of repeated averages
/// converge to the true average, and a rank sends about 2 bits per element.
/// </summary>
[TestClass]
public sealed class OneBitCompressionTests
{

    private static T[] OnRanks<T>(int ranks, Func<ICommunicator, T> body) => InProcessGroup.Run(ranks, body, TimeSpan.FromMinutes(1));

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    [DataRow(5)]
    [DataRow(6)]
    public void AllToAllDeliversEveryBlock(int ranks)
    {
        const int block = 3;
        var received = OnRanks(ranks, communicator =>
        {
            var send = new float[ranks * block];
            for (int to = 0; to < ranks; to++)
                for (int j = 0; j < block; j++) send[to * block + j] = 1000 * communicator.Rank + 10 * to + j;
            var receive = new float[ranks * block];
            PairwiseAllToAll.Exchange(communicator, send, receive, block);
            return receive;
        });
        for (int rank = 0; rank < ranks; rank++)
            for (int from = 0; from < ranks; from++)
                for (int j = 0; j < block; j++)
                    Assert.AreEqual(1000 * from + 10 * rank + j, received[rank][from * block + j], $"rank {rank}, block from {from}");
    }

    /// <summary>Every rank's compressed average equals the simulation's, round after round (the errors carry over).</summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void TheCompressedAverageIsTheReferenceOnEveryRank(int ranks)
    {
        const int Rounds = 4;
        var inputs = Enumerable.Range(0, Rounds).Select(round => Enumerable.Range(0, ranks).Select(rank => RandomValues(Length, 100 * round + rank)).ToArray()).ToArray();
        var reference = new ReferenceCompression(ranks, Tensors);
        var expected = inputs.Select(reference.Average).ToArray();

        var results = OnRanks(ranks, communicator =>
        {
            var compression = new OneBitAllReduce(communicator, Tensors);
            return inputs.Select(round =>
            {
                var values = round[communicator.Rank].ToArray();
                compression.Average(values);
                return values;
            }).ToArray();
        });

        for (int rank = 0; rank < ranks; rank++)
            for (int round = 0; round < Rounds; round++)
                CollectionAssert.AreEqual(expected[round], results[rank][round], $"rank {rank}, round {round}");
        Assert.IsTrue(expected[Rounds - 1].Any(v => v != 0), "the averages are not zero");
    }

    /// <summary>
    /// Error feedback: averaging the same inputs again and again, one compressed average is far from the true one, but
    /// the running mean of them converges to it (what lost precision is carried into the next round).
    /// </summary>
    [TestMethod]
    public void ErrorFeedbackMakesTheRunningMeanConverge()
    {
        const int ranks = 3, rounds = 400;
        var inputs = Enumerable.Range(0, ranks).Select(rank => RandomValues(Length, 7 + rank)).ToArray();
        var truth = Enumerable.Range(0, Length).Select(i => inputs.Average(x => (double)x[i])).ToArray();
        var (first, mean) = OnRanks(ranks, communicator =>
        {
            var compression = new OneBitAllReduce(communicator, Tensors);
            var sum = new double[Length];
            float[] once = [];
            for (int round = 0; round < rounds; round++)
            {
                var values = inputs[communicator.Rank].ToArray();
                compression.Average(values);
                if (round == 0) once = values;
                for (int i = 0; i < Length; i++) sum[i] += values[i];
            }
            return (once, sum.Select(s => s / rounds).ToArray());
        })[0];

        double Error(double[] values) => Math.Sqrt(values.Zip(truth, (v, t) => (v - t) * (v - t)).Sum() / truth.Sum(t => t * t));
        double once = Error(first.Select(v => (double)v).ToArray()), converged = Error(mean);
        Console.WriteLine($"relative error of one compressed average {once:F3}, of the mean of {rounds}: {converged:F4}");
        Assert.IsTrue(once > 0.3, $"one 1-bit average is coarse: {once}");
        Assert.IsTrue(converged < 0.05, $"the running mean converges: {converged}");
    }

    [TestMethod]
    public void ARankSendsAboutTwoBitsPerElement()
    {
        const int ranks = 4, length = 64_000;
        var sent = OnRanks(ranks, communicator =>
        {
            var compression = new OneBitAllReduce(communicator, [new Range(0, length)]);
            var values = RandomValues(length, communicator.Rank);
            communicator.Traffic.Reset();
            compression.Average(values);
            long compressed = communicator.Traffic.TotalSent;
            communicator.Traffic.Reset();
            communicator.AllReduceSum(values);
            return (compressed, communicator.Traffic.TotalSent);
        })[0];
        double bitsPerElement = 8.0 * sent.compressed / length;
        Console.WriteLine($"4 ranks, {length:N0} elements: 1-bit {sent.compressed:N0} bytes sent ({bitsPerElement:F2} bits per element), fp32 all-reduce {sent.Item2:N0}");
        Assert.IsTrue(bitsPerElement < 2.1, $"{bitsPerElement} bits per element");
        Assert.IsTrue(sent.Item2 > 20 * sent.compressed, "at least 20× less than the fp32 all-reduce");
    }

    /// <summary>Before the freeze step OneBitAdam is Adam without bias correction, decay added to the update (float64 reference).</summary>
    [TestMethod]
    public void WarmUpIsAdamWithoutBiasCorrection()
    {
        var config = OneBitConfig(freezeStep: 10);
        var adam = new AdamOptimizer(Length, AdamOptions.FromConfig(config));
        var oneBit = new OneBitAdam(adam, 10, new SingleProcessCommunicator(), Tensors);
        var p = RandomValues(Length, 1);
        var (rp, rm, rv) = (p.Select(x => (double)x).ToArray(), new double[Length], new double[Length]);
        for (int step = 0; step < 5; step++)
        {
            Assert.IsFalse(oneBit.Compressing);
            var g = RandomValues(Length, 20 + step, 0.1f);
            oneBit.Step(p, g, 1e-2);
            for (int i = 0; i < Length; i++)
            {
                rm[i] = 0.9 * rm[i] + 0.1 * g[i];
                rv[i] = 0.999 * rv[i] + 0.001 * g[i] * (double)g[i];
                rp[i] -= 1e-2 * (rm[i] / (Math.Sqrt(rv[i]) + 1e-8) + 0.01 * rp[i]);
            }
        }
        for (int i = 0; i < Length; i++) Assert.AreEqual(rp[i], p[i], 1e-5 * Math.Max(1, Math.Abs(rp[i])), $"element {i}");
    }

    /// <summary>
    /// After the freeze step, on 1 and 3 ranks with different gradients per rank: the variance stays frozen, each rank folds
    /// its own gradient into the momentum, the momentum is averaged (compressed on several ranks: the reference simulates
    /// it), and every rank steps to the same parameters, those of the float64 formulas.
    /// </summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(3)]
    public void AfterTheFreezeTheMomentumIsAveragedAndTheVarianceFrozen(int ranks)
    {
        const int freeze = 2, steps = 5;
        var config = OneBitConfig(freeze);
        var initial = RandomValues(Length, 3);
        var gradients = Enumerable.Range(0, steps).Select(step => Enumerable.Range(0, ranks).Select(rank => RandomValues(Length, 50 + 10 * step + rank, 0.1f)).ToArray()).ToArray();

        // What the engine hands the optimizer: the average during warm-up, each rank's own gradient after the freeze.
        var averaged = gradients.Select(step => Enumerable.Range(0, Length).Select(i => step.Average(r => r[i])).ToArray()).ToArray();
        float[] GradientFor(int step, int rank) => step < freeze ? averaged[step] : gradients[step][rank];

        var results = OnRanks(ranks, communicator =>
        {
            var adam = new AdamOptimizer(Length, AdamOptions.FromConfig(config));
            var oneBit = new OneBitAdam(adam, freeze, communicator, Tensors);
            var p = initial.ToArray();
            for (int step = 0; step < steps; step++)
            {
                Assert.AreEqual(step >= freeze, oneBit.Compressing, $"step {step}");
                oneBit.Step(p, GradientFor(step, communicator.Rank), 1e-2);
            }
            return (p, adam.State.ExpAvgSq.ToArray());
        });

        // The reference: the moments in float with the kernel's expressions (so the compressed signs are the same),
        // the parameters in float64; per rank momentum after the freeze, the simulated compressed average, frozen v.
        var compression = new ReferenceCompression(ranks, Tensors);
        float beta1 = 0.9f, oneMinusBeta1 = (float)(1.0 - 0.9), beta2 = 0.999f, oneMinusBeta2 = (float)(1.0 - 0.999);
        var rp = initial.Select(x => (double)x).ToArray();
        var rv = new float[Length];
        var rm = Enumerable.Range(0, ranks).Select(_ => new float[Length]).ToArray();
        for (int step = 0; step < steps; step++)
        {
            for (int rank = 0; rank < ranks; rank++)
            {
                var g = GradientFor(step, rank);
                for (int i = 0; i < Length; i++) rm[rank][i] = beta1 * rm[rank][i] + oneMinusBeta1 * g[i];
            }
            if (step < freeze)
            {
                for (int i = 0; i < Length; i++) rv[i] = beta2 * rv[i] + oneMinusBeta2 * averaged[step][i] * averaged[step][i];
            }
            else if (ranks > 1)
            {
                var average = compression.Average(rm);
                foreach (var m in rm) average.CopyTo(m, 0);
            }
            for (int i = 0; i < Length; i++) rp[i] -= 1e-2 * (rm[0][i] / (Math.Sqrt(rv[i]) + 1e-8) + 0.01 * rp[i]);
        }

        for (int rank = 0; rank < ranks; rank++)
        {
            CollectionAssert.AreEqual(results[0].p, results[rank].p, $"rank {rank} holds other parameters than rank 0");
            CollectionAssert.AreEqual(rv, results[rank].Item2, "the variance is the warm-up's, frozen");
            for (int i = 0; i < Length; i++)
                Assert.AreEqual(rp[i], results[rank].p[i], 1e-4 * Math.Max(1, Math.Abs(rp[i])), $"rank {rank}, element {i}");
        }
    }

    [TestMethod]
    public void ConfigReadsOneBitAdamAndRefusesZero()
    {
        var optimizer = OneBitConfig(23000);
        Assert.AreEqual(OptimizerType.OneBitAdam, optimizer.Type);
        Assert.AreEqual(23000, optimizer.OneBit!.FreezeStep);
        Assert.IsFalse(optimizer.BiasCorrection);
        Assert.IsTrue(optimizer.AdamWMode);

        var error = Assert.ThrowsExactly<ConfigException>(() => DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "OneBitAdam", "params": { "lr": 1e-3, "freeze_step": 5 } },
              "zero_optimization": { "stage": 1 } }
            """));
        StringAssert.Contains(error.Message, "$.zero_optimization.stage: 1 partitions the optimizer over ranks, and OneBitAdam");
        var warned = DeepSpeedConfig.Parse("""
            { "train_micro_batch_size_per_gpu": 1, "optimizer": { "type": "OneBitAdam", "params": { "bias_correction": true, "comm_backend_name": "gloo" } } }
            """);
        Assert.IsTrue(warned.Warnings.Any(w => w.StartsWith("$.optimizer.params.bias_correction: true has no effect", StringComparison.Ordinal)));
        Assert.IsTrue(warned.Warnings.Any(w => w.StartsWith("$.optimizer.params.comm_backend_name:", StringComparison.Ordinal)));
    }

    private static OptimizerConfig OneBitConfig(long freezeStep) => DeepSpeedConfig.Parse($$"""
        { "train_micro_batch_size_per_gpu": 1,
          "optimizer": { "type": "OneBitAdam", "params": { "lr": 1e-2, "weight_decay": 0.01, "bias_correction": false, "freeze_step": {{freezeStep}},
                                                           "cuda_aware": false, "comm_backend_name": "nccl" } } }
        """).Config.Optimizer!;
}
