using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

/// <summary>
/// Lion against a float64 reference written from the paper's algorithm on random data (several lengths and steps, a
/// changing learning rate, weight decay), the sign of an exact zero, chunked steps against whole ones, and the config.
/// </summary>
[TestClass]
public sealed class LionTests
{
    /// <summary>The paper's Algorithm 2 in double: decay, sign of the interpolation, then the momentum.</summary>
    private static void Reference(double[] p, double[] g, double[] m, double lr, double beta1, double beta2, double wd)
    {
        for (int i = 0; i < p.Length; i++)
        {
            double c = beta1 * m[i] + (1 - beta1) * g[i];
            p[i] = p[i] * (1 - lr * wd) - lr * Math.Sign(c);
            m[i] = beta2 * m[i] + (1 - beta2) * g[i];
        }
    }

    [TestMethod]
    [DataRow(1, 1)]
    [DataRow(17, 3)]
    [DataRow(1027, 8)]
    public void MatchesTheFloat64Reference(int length, int steps)
    {
        var random = new Random(length + steps);
        var options = new AdamOptions { Beta1 = 0.9, Beta2 = 0.99, WeightDecay = 0.1, Lion = true, BiasCorrection = false };
        var optimizer = new AdamOptimizer(length, options);
        float[] parameters = RandomData.NonZero(random, length, 0.1, 1.0);
        double[] reference = RandomData.ToDouble(parameters), momentum = new double[length];
        for (int step = 0; step < steps; step++)
        {
            float[] gradients = RandomData.NonZero(random, length, 1e-3, 1.0);
            double lr = 1e-2 * (1 + 0.5 * step);
            optimizer.Step(parameters, gradients, lr);
            Reference(reference, RandomData.ToDouble(gradients), momentum, lr, 0.9, 0.99, 0.1);
        }
        for (int i = 0; i < length; i++)
        {
            Assert.AreEqual(reference[i], parameters[i], 1e-5 * (1 + Math.Abs(reference[i])), $"parameter {i}");
            Assert.AreEqual(momentum[i], optimizer.State.ExpAvg[i], 1e-6 * (1 + Math.Abs(momentum[i])), $"momentum {i}");
        }
        Assert.IsTrue(optimizer.State.ExpAvgSq.All(v => v == 0), "Lion keeps one moment");
        Assert.AreEqual(steps, optimizer.State.Step);
    }

    [TestMethod]
    public void AZeroInterpolationTakesNoStepBeyondTheDecay()
    {
        var optimizer = new AdamOptimizer(2, new AdamOptions { Beta1 = 0.9, Beta2 = 0.99, WeightDecay = 0.5, Lion = true, BiasCorrection = false });
        float[] parameters = [2f, 2f];
        optimizer.Step(parameters, [0f, -4f], 0.1);
        Assert.AreEqual(2f * (1 - 0.05f), parameters[0], "sign(0) = 0: only the decay");
        Assert.AreEqual(2f * (1 - 0.05f) + 0.1f, parameters[1], 1e-6f, "a negative interpolation steps up by lr");
        Assert.AreEqual(-0.04f, optimizer.State.ExpAvg[1], 1e-7f);
    }

    [TestMethod]
    public void ChunksStepAsTheWholeBufferDoes() => ChunkedStepping.AssertChunksMatchTheWholeBuffer(
        new AdamOptions { Beta1 = 0.95, Beta2 = 0.98, WeightDecay = 0.01, Lion = true, BiasCorrection = false }, length: 300, chunk: 128, learningRate: 1e-3, seed: 4);

    [TestMethod]
    public void TheConfigReadsLionAndSaysWhatItIgnores()
    {
        var result = DeepSpeedConfig.Parse("""
            { "train_batch_size": 8, "optimizer": { "type": "Lion", "params": { "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.1, "eps": 1e-8 } } }
            """);
        var optimizer = result.Config.Optimizer!;
        Assert.AreEqual((OptimizerType.Lion, 1e-4, 0.9, 0.99, 0.1, false), (optimizer.Type, optimizer.LearningRate, optimizer.Beta1, optimizer.Beta2, optimizer.WeightDecay, optimizer.BiasCorrection));
        CollectionAssert.Contains(result.Warnings.ToList(), "$.optimizer.params.eps: has no effect: Lion's update is the sign of its momentum (DeepSpeed's Lion takes no such parameter)");
        Assert.IsTrue(AdamOptions.FromConfig(optimizer).Lion);
    }
}
