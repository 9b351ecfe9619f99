using System;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed.InProcess;
using Shardwise.Pipeline.Probe;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// Measures the pipeline bubble: the share of a step each rank spends blocked in receives, next to 1F1B's theory
/// (p − 1)/(m + p − 1). Two stages (this machine has two cores, so each stage gets one) of a chain model wide enough that
/// compute dominates the hand-offs; the first steps are warm-up and not counted.
/// </summary>
[TestClass]
public sealed class PipelineBubbleBenchmark
{
    [TestMethod]
    public void MeasuredIdleFractionFollowsTheBubbleFormula()
    {
        var model = new ChainModel(Vocabulary: 64, Width: 192, Blocks: 4, Sequence: 32);
        const int pipeline = 2, steps = 6, warmup = 2;
        var measured = new double[] { 1, 2, 4, 8 }.Select(m => (int)m).ToDictionary(m => m, m =>
        {
            var ranks = InProcessGroup.Run(pipeline, world =>
                ChainTraining.Pipelined(world, model, pipeline, 1, steps, m), TimeSpan.FromMinutes(2));
            return ranks.Select(r => r.IdleFractions.Skip(warmup).Average()).ToArray();
        });

        Console.WriteLine("m   theory  stage 0  stage 1");
        foreach (var (m, idle) in measured)
            Console.WriteLine(FormattableString.Invariant($"{m,-3} {OneFOneBSchedule.BubbleFraction(pipeline, m),6:P1}  {idle[0],7:P1}  {idle[1],7:P1}"));

        // Timing on a shared machine is noisy; the shape is not: more micro-batches, a smaller bubble.
        double Mean(int m) => measured[m].Average();
        Assert.IsTrue(Mean(8) < Mean(1), $"the bubble should shrink from m = 1 ({Mean(1):P1}) to m = 8 ({Mean(8):P1})");
        Assert.IsTrue(measured.Values.SelectMany(v => v).All(f => f is >= 0 and < 1), "idle fractions are shares of the step");
    }
}
