using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Distributed;
using Shardwise.Distributed.InProcess;
using Shardwise.Pipeline.Probe;
using Shardwise.Training.Pipeline;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// What the pipeline benchmark reads from <see cref="PipelineEngine"/>: each batch's step time, time blocked in
/// receives and idle fraction are sane numbers, and each stage ran exactly its 1F1B program (transfers counted by the
/// pipeline group's traffic, backwards by the engine's micro-steps, one optimizer step). No timing is asserted here:
/// the bubble's size against (p − 1)/(m + p − 1) is measured by bench/pipeline-bench.sh (docs/benchmarks.md).
/// </summary>
[TestClass]
public sealed class PipelineBubbleBenchmark
{
    private const int Steps = 3;

    /// <summary>One rank's record of one batch.</summary>
    private sealed record BatchRecord(
        double StepSeconds, double ReceiveSeconds, double IdleFraction,
        long SentBytes, long ReceivedBytes, long MicroSteps, long GlobalSteps, double Loss);

    /// <summary>What a stage's program moves: its transfers times the elements of each, and its backwards.</summary>
    private sealed record ScheduleCounts(long SentElements, long ReceivedElements, int Backwards, int OptimizerSteps);

    [TestMethod]
    [DataRow(2, 1)]
    [DataRow(2, 4)]
    [DataRow(4, 1)]
    [DataRow(4, 3)]
    public void EachStageReportsSaneTimesAndRunsItsScheduleExactly(int pipeline, int microBatches)
    {
        var model = new ChainModel(Vocabulary: 16, Width: 16, Blocks: 4, Sequence: 8);
        var partition = model.Partition(pipeline, 1);
        var results = InProcessGroup.Run(pipeline, world =>
        {
            using var groups = ParallelGroups.Create(world, partition);
            var plan = partition.Stages[groups.Coordinates.Stage];
            var stage = new ChainStage(model, plan, new CpuOps<float>(), ChainTraining.MicroBatch);
            PartitionedParameters.Extract(model.FullLayout(), ChainTraining.InitialWeights(model), plan, 0, stage.Parameters);
            var engine = new PipelineEngine(stage, ChainTraining.Config(microBatches), groups);
            var expected = Expected(stage, pipeline, microBatches);

            var records = new List<BatchRecord>();
            for (int step = 0; step < Steps; step++)
            {
                var (tokens, targets) = ChainTraining.GlobalBatch(model, step, microBatches);
                TrafficCounter traffic = groups.Pipeline.Traffic;
                traffic.Reset();
                long microStep = engine.Engine.MicroStep, globalStep = engine.Engine.GlobalStep;
                double loss = engine.TrainBatch(tokens, targets);
                records.Add(new BatchRecord(engine.LastStepSeconds, engine.LastReceiveSeconds, engine.LastIdleFraction,
                    traffic.Sent(Collective.Send), traffic.Received(Collective.Receive),
                    engine.Engine.MicroStep - microStep, engine.Engine.GlobalStep - globalStep, loss));
            }
            return (Stage: groups.Coordinates.Stage, Expected: expected, Records: records);
        }, TimeSpan.FromMinutes(1));

        foreach (var (stageIndex, expected, records) in results)
        {
            for (int step = 0; step < Steps; step++)
            {
                BatchRecord r = records[step];
                string where = $"p = {pipeline}, m = {microBatches}, stage {stageIndex}, step {step}";
                Assert.IsTrue(r.StepSeconds > 0 && double.IsFinite(r.StepSeconds), $"{where}: step time {r.StepSeconds} s");
                Assert.IsTrue(r.ReceiveSeconds >= 0 && r.ReceiveSeconds < r.StepSeconds,
                    $"{where}: {r.ReceiveSeconds} s in receives of a {r.StepSeconds} s step");
                Assert.IsTrue(r.IdleFraction is >= 0 and < 1, $"{where}: idle fraction {r.IdleFraction}");
                Assert.AreEqual(r.ReceiveSeconds / r.StepSeconds, r.IdleFraction, 1e-12, $"{where}: idle fraction is receive time / step time");
                Assert.IsTrue(r.ReceiveSeconds > 0, $"{where}: every stage of a pipeline receives, so its receive time is counted");

                Assert.AreEqual(expected.SentElements * sizeof(float), r.SentBytes, $"{where}: bytes sent to the neighbouring stages");
                Assert.AreEqual(expected.ReceivedElements * sizeof(float), r.ReceivedBytes, $"{where}: bytes received from the neighbouring stages");
                Assert.AreEqual(expected.Backwards, r.MicroSteps, $"{where}: backwards (engine micro-steps)");
                Assert.AreEqual(expected.OptimizerSteps, r.GlobalSteps, $"{where}: optimizer steps");
                Assert.IsTrue(double.IsFinite(r.Loss) && r.Loss > 0, $"{where}: loss {r.Loss}");
            }
        }
    }

    /// <summary>
    /// Counts the instructions of the stage's 1F1B program and sizes its transfers by the stage's own buffers: the
    /// activation it receives and the gradient it sends have the input's size, the others the output's.
    /// </summary>
    private static ScheduleCounts Expected(ChainStage stage, int pipeline, int microBatches)
    {
        var program = OneFOneBSchedule.Build(pipeline, stage.Stage.Index, microBatches);
        int Count<T>() where T : PipeInstruction => program.OfType<T>().Count();
        long sent = Count<SendActivation>() * stage.SentActivation.Length + Count<SendGradient>() * stage.InputGradient.Length;
        long received = Count<ReceiveActivation>() * stage.ReceivedActivation.Length + Count<ReceiveGradient>() * stage.OutputGradient.Length;
        // Forwards and backwards pair up; each backward ends one engine micro-step.
        Assert.AreEqual(Count<Forward>(), Count<Backward>(), "a schedule runs each micro-batch forward and backward");
        Assert.AreEqual(microBatches, Count<Backward>(), "a schedule runs every micro-batch once");
        return new ScheduleCounts(sent, received, Count<Backward>(), Count<OptimizerStep>());
    }
}
