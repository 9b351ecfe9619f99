using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;
using Shardwise.Pipeline.Probe;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// The pipeline runtime against one process: a hand-written chain model (tied embedding and head, gradient clipping
/// active every step, fp32 AdamW) trained 20 steps of m = 4 micro-batches through <c>PipelineEngine</c>, ranks as
/// threads, must give the one-process loss curve and final weights (relative &lt; 1e-5).
/// </summary>
[TestClass]
public sealed class PipelineEquivalenceTests
{
    private const int Steps = 20;
    private const int MicroBatches = 4;

    [TestMethod]
    [DataRow(2, 1, 1, 0)]
    [DataRow(4, 1, 1, 0)]
    [DataRow(2, 1, 2, 0)]
    [DataRow(4, 1, 2, 0)]
    [DataRow(2, 1, 2, 1)]
    [DataRow(1, 2, 1, 0)]
    [DataRow(2, 2, 1, 0)]
    [DataRow(2, 2, 2, 1)]
    [DataRow(2, 1, 2, 2)] // ZeRO-2: gradients reduce-scattered in buckets during backward, tied pieces summed after
    [DataRow(2, 2, 2, 2)]
    public void PipelinedRunEqualsOneProcess(int pipeline, int tensor, int data, int zeroStage) =>
        CheckAgainstOneProcess(pipeline, tensor, data, zeroStage, fp16: false, tolerance: 1e-5);

    /// <summary>
    /// fp16 with a loss scale that overflows at first: every rank must skip exactly the steps one process skips, which
    /// only holds when the overflow check spans the model-parallel group (a stage alone may see no overflow). fp16
    /// rounding of the working weights turns reduction-order differences into whole fp16 ulps, so values agree to 1e-3.
    /// </summary>
    [TestMethod]
    [DataRow(4, 1, 1, 0)]
    [DataRow(2, 2, 2, 1)]
    public void PipelinedFp16RunSkipsTheStepsOneProcessSkips(int pipeline, int tensor, int data, int zeroStage) =>
        CheckAgainstOneProcess(pipeline, tensor, data, zeroStage, fp16: true, tolerance: 1e-3);

    /// <summary>
    /// fp16 at ZeRO-2 rounds each micro-batch's gradient to fp16 as it streams, so its overflow steps depend on the
    /// micro-batches per rank: the reference is one process at ZeRO-2 with the same m (one data replica).
    /// </summary>
    [TestMethod]
    [DataRow(2, 1, 1)]
    [DataRow(2, 2, 1)]
    public void PipelinedFp16ZeroTwoRunSkipsTheStepsOneProcessAtZeroTwoSkips(int pipeline, int tensor, int data) =>
        CheckAgainstOneProcess(pipeline, tensor, data, zeroStage: 2, fp16: true, tolerance: 1e-3, referenceZeroStage: 2);

    private static void CheckAgainstOneProcess(int pipeline, int tensor, int data, int zeroStage, bool fp16, double tolerance, int referenceZeroStage = 0)
    {
        var model = new ChainModel();
        ChainResult reference = ChainTraining.Reference(model, Steps, data * MicroBatches, fp16: fp16, zeroStage: referenceZeroStage);
        if (fp16) Assert.IsTrue(reference.SkippedSteps > 0, "a loss scale of 2^24 must overflow at first, so the overflow check decides steps");
        int world = pipeline * tensor * data;
        ChainResult[] ranks = InProcessGroup.Run(world,
            communicator => ChainTraining.Pipelined(communicator, model, pipeline, tensor, Steps, MicroBatches, zeroStage, fp16: fp16), TimeSpan.FromMinutes(2));

        for (int rank = 0; rank < world; rank++)
        {
            for (int step = 0; step < Steps; step++)
            {
                Assert.IsTrue(Close(ranks[rank].Losses[step], reference.Losses[step], tolerance), $"rank {rank}, step {step}: loss {ranks[rank].Losses[step]:R}, one process {reference.Losses[step]:R}");
            }
            for (int step = 0; step < Steps; step++)
            {
                Assert.IsTrue(Close(ranks[rank].GradientNorms[step], reference.GradientNorms[step], tolerance), $"rank {rank}, step {step}: gradient norm {ranks[rank].GradientNorms[step]:R}, one process {reference.GradientNorms[step]:R}");
            }
            Assert.AreEqual(reference.SkippedSteps, ranks[rank].SkippedSteps, $"rank {rank}: every rank must skip the steps one process skips");
            double weights = ChainTraining.RelativeDifference(ranks[rank].Weights, reference.Weights);
            Assert.IsTrue(weights < tolerance, $"rank {rank}: final weights differ from one process by {weights:E2}");
        }
        Console.WriteLine($"p={pipeline} t={tensor} d={data} ZeRO-{zeroStage}{(fp16 ? $" fp16 ({reference.SkippedSteps} skipped)" : "")}: loss {reference.Losses[0]:F4} -> {reference.Losses[^1]:F4}, " +
            $"weights relative difference {ChainTraining.RelativeDifference(ranks[0].Weights, reference.Weights):E2}");
        Assert.IsTrue(reference.GradientNorms.Skip((int)reference.SkippedSteps).All(norm => norm > 0.05), "clipping (at 0.05) must act on every step, so the model-parallel norm matters");
        Assert.IsTrue(reference.Losses[^1] < reference.Losses[0] - 0.1, "the model must learn, or the comparison proves little");
        Assert.IsTrue(ChainTraining.RelativeDifference(reference.Weights, ChainTraining.InitialWeights(model)) > 1e-2, "training must move the weights");
    }

    /// <summary>Relative difference below <paramref name="tolerance"/> (or both exactly equal, as two zero norms before the first update).</summary>
    private static bool Close(double actual, double expected, double tolerance) =>
        actual == expected || Math.Abs(actual - expected) / Math.Abs(expected) < tolerance;
}
