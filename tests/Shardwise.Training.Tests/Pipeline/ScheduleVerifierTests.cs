using System.Collections.Generic;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Pipeline;

namespace Shardwise.Training.Tests.Pipeline;

[TestClass]
public sealed class ScheduleVerifierTests
{
    [TestMethod]
    public void EveryPipelineUpToEightStagesAndSixteenMicroBatchesIsProved()
    {
        for (int p = 1; p <= 8; p++)
        {
            for (int m = 1; m <= 16; m++)
            {
                var result = ScheduleVerifier.Verify(p, m);
                Assert.IsTrue(result.IsValid, $"p={p} m={m}: {string.Join("; ", result.Errors)}");

                // Unit forward and backward: the batch takes 2(m + p − 1) slots, and the bubble is (p − 1)/(m + p − 1).
                Assert.AreEqual(2L * (m + p - 1), result.Makespan, $"p={p} m={m}");
                Assert.AreEqual(OneFOneBSchedule.BubbleFraction(p, m), result.Bubble, 1e-12, $"p={p} m={m}");
                Assert.AreEqual((long)p * result.Makespan - 2L * p * m, result.IdleSlots);
            }
        }
    }

    [TestMethod]
    public void BubbleFormula()
    {
        Assert.AreEqual(0.0, OneFOneBSchedule.BubbleFraction(1, 4));
        Assert.AreEqual(1.0 / 3, OneFOneBSchedule.BubbleFraction(2, 2), 1e-15);
        Assert.AreEqual(3.0 / 11, OneFOneBSchedule.BubbleFraction(4, 8), 1e-15);
        Assert.AreEqual(3.0 / 19, OneFOneBSchedule.BubbleFraction(4, 16), 1e-15);
        Assert.AreEqual(7.0 / 39, OneFOneBSchedule.BubbleFraction(8, 32), 1e-15); // m = 4p keeps it under 20%
    }

    [TestMethod]
    public void StageHoldsAtMostPMinusStageMicroBatchesInFlight()
    {
        // The activation memory 1F1B is known for: stage s keeps at most min(p − s, m) micro-batches alive.
        for (int p = 1; p <= 8; p++)
        {
            for (int m = 1; m <= 16; m++)
            {
                for (int s = 0; s < p; s++)
                {
                    int live = 0, peak = 0;
                    foreach (var instruction in OneFOneBSchedule.Build(p, s, m))
                    {
                        if (instruction is Forward) peak = System.Math.Max(peak, ++live);
                        if (instruction is Backward) live--;
                    }
                    Assert.AreEqual(System.Math.Min(p - s, m), peak, $"p={p} m={m} s={s}");
                }
            }
        }
    }

    [TestMethod]
    public void TimelineOfTwoStages()
    {
        const string expected = """
            stage 0: F0 F1 .. B0 .. B1
            stage 1: .. F0 B0 F1 B1 ..
            bubble: 4 of 12 stage-slots idle (33.3%)

            """;
        Assert.AreEqual(expected.Replace("\r\n", "\n"), ScheduleText.Timeline(ScheduleVerifier.Verify(2, 2)));
    }

    [TestMethod]
    public void TimelineOfFourStages()
    {
        const string expected = """
            stage 0: F0 F1 F2 F3 .. .. .. B0 F4 B1 F5 B2 F6 B3 F7 B4 .. B5 .. B6 .. B7
            stage 1: .. F0 F1 F2 .. .. B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 .. B6 .. B7 ..
            stage 2: .. .. F0 F1 .. B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 .. B7 .. ..
            stage 3: .. .. .. F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7 .. .. ..
            bubble: 24 of 88 stage-slots idle (27.3%)

            """;
        Assert.AreEqual(expected.Replace("\r\n", "\n"), ScheduleText.Timeline(ScheduleVerifier.Verify(4, 8)));
    }

    [TestMethod]
    public void SwappedSendsAreCaught()
    {
        // Stage 0 of (3, 4) sends micro-batch 1's activation before micro-batch 0's: stage 1 is waiting for 0.
        var programs = Programs(3, 4);
        var stage0 = programs[0];
        int first = stage0.FindIndex(i => i is SendActivation { MicroBatch: 0 });
        int second = stage0.FindIndex(i => i is SendActivation { MicroBatch: 1 });
        (stage0[first], stage0[second]) = (stage0[second], stage0[first]);

        var result = ScheduleVerifier.Verify(programs.Select(p => (IReadOnlyList<PipeInstruction>)p).ToList(), 4);
        Assert.IsFalse(result.IsValid);
        StringAssert.Contains(string.Join("\n", result.Errors),
            "stage 0 runs SendActivation(mb 1, buf 1) while stage 1 runs ReceiveActivation(mb 0, buf 0): the micro-batches differ");
    }

    [TestMethod]
    public void SendingBeforeReceivingTheGradientDeadlocks()
    {
        // The textbook order (send the activation, then wait for the gradient) meets the next stage sending its
        // gradient first: with blocking sends both wait forever.
        var programs = Programs(2, 2);
        var stage0 = programs[0];
        int receive = stage0.FindIndex(i => i is ReceiveGradient { MicroBatch: 0 });
        int send = stage0.FindIndex(i => i is SendActivation { MicroBatch: 1 });
        (stage0[receive], stage0[send]) = (stage0[send], stage0[receive]);

        var result = ScheduleVerifier.Verify(programs.Select(p => (IReadOnlyList<PipeInstruction>)p).ToList(), 2);
        CollectionAssert.AreEqual(new[]
        {
            "simulation: deadlock: stage 0 at SendActivation(mb 1, buf 1); stage 1 at SendGradient(mb 0, buf 0)",
        }, result.Errors.ToArray());
    }

    [TestMethod]
    public void BufferReusedWhileLiveIsCaught()
    {
        // Stage 0 of (3, 4) has three buffers; putting micro-batch 3 into buffer 1 overwrites micro-batch 1,
        // which is still waiting for its backward.
        var programs = Programs(3, 4);
        var stage0 = programs[0];
        for (int k = 0; k < stage0.Count; k++)
        {
            stage0[k] = stage0[k] switch
            {
                LoadMicroBatch { MicroBatch: 3 } => new LoadMicroBatch(3, 1),
                Forward { MicroBatch: 3 } => new Forward(3, 1),
                SendActivation { MicroBatch: 3 } => new SendActivation(3, 1),
                ReceiveGradient { MicroBatch: 3 } => new ReceiveGradient(3, 1),
                Backward { MicroBatch: 3 } => new Backward(3, 1),
                var other => other,
            };
        }

        var result = ScheduleVerifier.Verify(programs.Select(p => (IReadOnlyList<PipeInstruction>)p).ToList(), 4);
        CollectionAssert.AreEqual(new[] { "stage 0: buffer 1 is overwritten by micro-batch 3 while micro-batch 1 still uses it" }, result.Errors.ToArray());
    }

    [TestMethod]
    public void BackwardBeforeForwardAndMissingStepAreCaught()
    {
        var programs = Programs(2, 2);
        var stage1 = programs[1];
        int forward = stage1.FindIndex(i => i is Forward { MicroBatch: 1 });
        int backward = stage1.FindIndex(i => i is Backward { MicroBatch: 1 });
        (stage1[forward], stage1[backward]) = (stage1[backward], stage1[forward]);
        stage1.RemoveAt(stage1.Count - 1);

        var errors = ScheduleVerifier.Verify(programs.Select(p => (IReadOnlyList<PipeInstruction>)p).ToList(), 2).Errors;
        CollectionAssert.Contains(errors.ToList(), "stage 1: the backward of micro-batch 1 runs before its forward");
        CollectionAssert.Contains(errors.ToList(), "stage 1: the program must end with ReduceTiedGradients, ReduceGradients, OptimizerStep, once each");
    }

    [TestMethod]
    public void UnpipelinedMicroBatchesAreCorrectButMissTheBubbleFormula()
    {
        // Each micro-batch goes all the way forward and back before the next starts: no overlap at all.
        var stage0 = new List<PipeInstruction>();
        var stage1 = new List<PipeInstruction>();
        for (int mb = 0; mb < 2; mb++)
        {
            stage0.AddRange(new PipeInstruction[] { new LoadMicroBatch(mb, mb), new Forward(mb, mb), new SendActivation(mb, mb), new ReceiveGradient(mb, mb), new Backward(mb, mb) });
            stage1.AddRange(new PipeInstruction[] { new ReceiveActivation(mb, mb), new LoadMicroBatch(mb, mb), new Forward(mb, mb), new Backward(mb, mb), new SendGradient(mb, mb) });
        }
        foreach (var program in new[] { stage0, stage1 })
            program.AddRange(new PipeInstruction[] { new ReduceTiedGradients(), new ReduceGradients(), new OptimizerStep() });
        var programs = new List<IReadOnlyList<PipeInstruction>> { stage0, stage1 };

        var relaxed = ScheduleVerifier.Verify(programs, 2, checkBubble: false);
        Assert.IsTrue(relaxed.IsValid, string.Join("; ", relaxed.Errors));
        Assert.AreEqual(8, relaxed.Makespan);
        Assert.AreEqual(0.5, relaxed.Bubble);

        var strict = ScheduleVerifier.Verify(programs, 2);
        CollectionAssert.AreEqual(new[] { "bubble: 8 of 16 stage-slots idle (0.5), but 1F1B's bubble is (p − 1)/(m + p − 1) = 1/3" }, strict.Errors.ToArray());
    }

    private static List<List<PipeInstruction>> Programs(int stages, int microBatches)
        => OneFOneBSchedule.BuildAll(stages, microBatches).Select(p => p.ToList()).ToList();
}
