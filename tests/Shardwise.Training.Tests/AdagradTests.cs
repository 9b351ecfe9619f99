using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

/// <summary>Adagrad against a float64 reference on random data, chunked steps against whole ones, and DeepSpeed's defaults.</summary>
[TestClass]
public sealed class AdagradTests
{
    private static void Reference(double[] p, double[] g, double[] sum, double lr, double eps, double wd)
    {
        for (int i = 0; i < p.Length; i++)
        {
            double grad = g[i] + wd * p[i];
            sum[i] += grad * grad;
            p[i] -= lr * grad / (Math.Sqrt(sum[i]) + eps);
        }
    }

    [TestMethod]
    [DataRow(1, 1)]
    [DataRow(33, 4)]
    [DataRow(1027, 9)]
    public void MatchesTheFloat64Reference(int length, int steps)
    {
        var random = new Random(length * 7 + steps);
        var optimizer = new AdamOptimizer(length, new AdamOptions { Eps = 1e-10, WeightDecay = 0.01, Adagrad = true, BiasCorrection = false });
        float[] parameters = RandomData.NonZero(random, length, 0.1, 1.0);
        double[] reference = RandomData.ToDouble(parameters), sum = new double[length];
        for (int step = 0; step < steps; step++)
        {
            float[] gradients = RandomData.NonZero(random, length, 1e-3, 1.0);
            double lr = 1e-2 / (1 + step);
            optimizer.Step(parameters, gradients, lr);
            Reference(reference, RandomData.ToDouble(gradients), sum, lr, 1e-10, 0.01);
        }
        for (int i = 0; i < length; i++)
        {
            Assert.AreEqual(reference[i], parameters[i], 1e-6 * (1 + Math.Abs(reference[i])), $"parameter {i}");
            Assert.AreEqual(sum[i], optimizer.State.ExpAvgSq[i], 1e-5 * sum[i], $"accumulator {i}");
        }
        Assert.IsTrue(optimizer.State.ExpAvg.All(v => v == 0), "Adagrad keeps one tensor");
    }

    [TestMethod]
    public void ChunksStepAsTheWholeBufferDoes() => ChunkedStepping.AssertChunksMatchTheWholeBuffer(
        new AdamOptions { Eps = 1e-10, WeightDecay = 0.1, Adagrad = true, BiasCorrection = false }, length: 250, chunk: 96, learningRate: 1e-2, seed: 6);

    [TestMethod]
    public void TheConfigHasDeepSpeedsDefaultsAndSaysWhatItIgnores()
    {
        var result = DeepSpeedConfig.Parse("""{ "train_batch_size": 8, "optimizer": { "type": "Adagrad", "params": { "betas": [0.9, 0.99] } } }""");
        var optimizer = result.Config.Optimizer!;
        Assert.AreEqual((OptimizerType.Adagrad, 1e-2, 1e-10, false), (optimizer.Type, optimizer.LearningRate, optimizer.Eps, optimizer.BiasCorrection));
        CollectionAssert.Contains(result.Warnings.ToList(), "$.optimizer.params.betas: has no effect: Adagrad keeps only the sum of squared gradients (DeepSpeed's Adagrad takes no such parameter)");
        var set = DeepSpeedConfig.Parse("""{ "train_batch_size": 8, "optimizer": { "type": "adagrad", "params": { "lr": 0.05, "eps": 1e-8 } } }""").Config.Optimizer!;
        Assert.AreEqual((0.05, 1e-8), (set.LearningRate, set.Eps));
        Assert.IsTrue(AdamOptions.FromConfig(set).Adagrad);
    }
}
