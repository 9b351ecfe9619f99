using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Pipeline;

namespace Shardwise.Training.Tests.Pipeline;

/// <summary>
/// The 1F1B programs for small pipelines, written out by hand from the rules: stage s runs min(p − s − 1, m) warm-up
/// forwards, then forward/backward pairs, then the remaining backwards; micro-batch i uses buffer i mod
/// max(2, min(p − s, m)); a forward is preceded by its receive (and a load on the first and last stage) and followed by
/// its send, except that before a backward the stage first receives that backward's gradient; a backward is followed
/// by its gradient send; the reductions and the step end the batch.
/// </summary>
[TestClass]
public sealed class OneFOneBScheduleTests
{
    private const string Step = """
          ReduceTiedGradients
          ReduceGradients
          OptimizerStep

        """;

    [TestMethod]
    public void TwoStagesTwoMicroBatches()
    {
        string expected = """
            1F1B schedule: 2 stages, 2 micro-batches
            stage 0: warm-up 1, buffers 2
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              SendActivation(mb 0, buf 0)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              ReceiveGradient(mb 0, buf 0)
              SendActivation(mb 1, buf 1)
              Backward(mb 0, buf 0)
              ReceiveGradient(mb 1, buf 1)
              Backward(mb 1, buf 1)

            """.TrimEnd('\n') + "\n" + Step + """
            stage 1: warm-up 0, buffers 2
              ReceiveActivation(mb 0, buf 0)
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              Backward(mb 0, buf 0)
              SendGradient(mb 0, buf 0)
              ReceiveActivation(mb 1, buf 1)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              Backward(mb 1, buf 1)
              SendGradient(mb 1, buf 1)

            """.TrimEnd('\n') + "\n" + Step;

        AssertText(expected, ScheduleText.Format(2, 2));
    }

    [TestMethod]
    public void TwoStagesFourMicroBatches()
    {
        string expected = """
            1F1B schedule: 2 stages, 4 micro-batches
            stage 0: warm-up 1, buffers 2
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              SendActivation(mb 0, buf 0)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              ReceiveGradient(mb 0, buf 0)
              SendActivation(mb 1, buf 1)
              Backward(mb 0, buf 0)
              LoadMicroBatch(mb 2, buf 0)
              Forward(mb 2, buf 0)
              ReceiveGradient(mb 1, buf 1)
              SendActivation(mb 2, buf 0)
              Backward(mb 1, buf 1)
              LoadMicroBatch(mb 3, buf 1)
              Forward(mb 3, buf 1)
              ReceiveGradient(mb 2, buf 0)
              SendActivation(mb 3, buf 1)
              Backward(mb 2, buf 0)
              ReceiveGradient(mb 3, buf 1)
              Backward(mb 3, buf 1)

            """.TrimEnd('\n') + "\n" + Step + """
            stage 1: warm-up 0, buffers 2
              ReceiveActivation(mb 0, buf 0)
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              Backward(mb 0, buf 0)
              SendGradient(mb 0, buf 0)
              ReceiveActivation(mb 1, buf 1)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              Backward(mb 1, buf 1)
              SendGradient(mb 1, buf 1)
              ReceiveActivation(mb 2, buf 0)
              LoadMicroBatch(mb 2, buf 0)
              Forward(mb 2, buf 0)
              Backward(mb 2, buf 0)
              SendGradient(mb 2, buf 0)
              ReceiveActivation(mb 3, buf 1)
              LoadMicroBatch(mb 3, buf 1)
              Forward(mb 3, buf 1)
              Backward(mb 3, buf 1)
              SendGradient(mb 3, buf 1)

            """.TrimEnd('\n') + "\n" + Step;

        AssertText(expected, ScheduleText.Format(2, 4));
    }

    /// <summary>Stage 1 is DeepSpeed's documented example: -, RecvAct|Fwd, SendAct, RecvAct|Fwd, RecvGrad|SendAct|Bwd, SendGrad|RecvAct|Fwd, …</summary>
    [TestMethod]
    public void ThreeStagesFourMicroBatches()
    {
        string expected = """
            1F1B schedule: 3 stages, 4 micro-batches
            stage 0: warm-up 2, buffers 3
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              SendActivation(mb 0, buf 0)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              SendActivation(mb 1, buf 1)
              LoadMicroBatch(mb 2, buf 2)
              Forward(mb 2, buf 2)
              ReceiveGradient(mb 0, buf 0)
              SendActivation(mb 2, buf 2)
              Backward(mb 0, buf 0)
              LoadMicroBatch(mb 3, buf 0)
              Forward(mb 3, buf 0)
              ReceiveGradient(mb 1, buf 1)
              SendActivation(mb 3, buf 0)
              Backward(mb 1, buf 1)
              ReceiveGradient(mb 2, buf 2)
              Backward(mb 2, buf 2)
              ReceiveGradient(mb 3, buf 0)
              Backward(mb 3, buf 0)

            """.TrimEnd('\n') + "\n" + Step + """
            stage 1: warm-up 1, buffers 2
              ReceiveActivation(mb 0, buf 0)
              Forward(mb 0, buf 0)
              SendActivation(mb 0, buf 0)
              ReceiveActivation(mb 1, buf 1)
              Forward(mb 1, buf 1)
              ReceiveGradient(mb 0, buf 0)
              SendActivation(mb 1, buf 1)
              Backward(mb 0, buf 0)
              SendGradient(mb 0, buf 0)
              ReceiveActivation(mb 2, buf 0)
              Forward(mb 2, buf 0)
              ReceiveGradient(mb 1, buf 1)
              SendActivation(mb 2, buf 0)
              Backward(mb 1, buf 1)
              SendGradient(mb 1, buf 1)
              ReceiveActivation(mb 3, buf 1)
              Forward(mb 3, buf 1)
              ReceiveGradient(mb 2, buf 0)
              SendActivation(mb 3, buf 1)
              Backward(mb 2, buf 0)
              SendGradient(mb 2, buf 0)
              ReceiveGradient(mb 3, buf 1)
              Backward(mb 3, buf 1)
              SendGradient(mb 3, buf 1)

            """.TrimEnd('\n') + "\n" + Step + """
            stage 2: warm-up 0, buffers 2
              ReceiveActivation(mb 0, buf 0)
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              Backward(mb 0, buf 0)
              SendGradient(mb 0, buf 0)
              ReceiveActivation(mb 1, buf 1)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              Backward(mb 1, buf 1)
              SendGradient(mb 1, buf 1)
              ReceiveActivation(mb 2, buf 0)
              LoadMicroBatch(mb 2, buf 0)
              Forward(mb 2, buf 0)
              Backward(mb 2, buf 0)
              SendGradient(mb 2, buf 0)
              ReceiveActivation(mb 3, buf 1)
              LoadMicroBatch(mb 3, buf 1)
              Forward(mb 3, buf 1)
              Backward(mb 3, buf 1)
              SendGradient(mb 3, buf 1)

            """.TrimEnd('\n') + "\n" + Step;

        AssertText(expected, ScheduleText.Format(3, 4));
    }

    [TestMethod]
    public void FourStagesEightMicroBatches()
    {
        string expected = """
            1F1B schedule: 4 stages, 8 micro-batches
            stage 0: warm-up 3, buffers 4
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              SendActivation(mb 0, buf 0)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              SendActivation(mb 1, buf 1)
              LoadMicroBatch(mb 2, buf 2)
              Forward(mb 2, buf 2)
              SendActivation(mb 2, buf 2)
              LoadMicroBatch(mb 3, buf 3)
              Forward(mb 3, buf 3)
              ReceiveGradient(mb 0, buf 0)
              SendActivation(mb 3, buf 3)
              Backward(mb 0, buf 0)
              LoadMicroBatch(mb 4, buf 0)
              Forward(mb 4, buf 0)
              ReceiveGradient(mb 1, buf 1)
              SendActivation(mb 4, buf 0)
              Backward(mb 1, buf 1)
              LoadMicroBatch(mb 5, buf 1)
              Forward(mb 5, buf 1)
              ReceiveGradient(mb 2, buf 2)
              SendActivation(mb 5, buf 1)
              Backward(mb 2, buf 2)
              LoadMicroBatch(mb 6, buf 2)
              Forward(mb 6, buf 2)
              ReceiveGradient(mb 3, buf 3)
              SendActivation(mb 6, buf 2)
              Backward(mb 3, buf 3)
              LoadMicroBatch(mb 7, buf 3)
              Forward(mb 7, buf 3)
              ReceiveGradient(mb 4, buf 0)
              SendActivation(mb 7, buf 3)
              Backward(mb 4, buf 0)
              ReceiveGradient(mb 5, buf 1)
              Backward(mb 5, buf 1)
              ReceiveGradient(mb 6, buf 2)
              Backward(mb 6, buf 2)
              ReceiveGradient(mb 7, buf 3)
              Backward(mb 7, buf 3)

            """.TrimEnd('\n') + "\n" + Step + """
            stage 1: warm-up 2, buffers 3
              ReceiveActivation(mb 0, buf 0)
              Forward(mb 0, buf 0)
              SendActivation(mb 0, buf 0)
              ReceiveActivation(mb 1, buf 1)
              Forward(mb 1, buf 1)
              SendActivation(mb 1, buf 1)
              ReceiveActivation(mb 2, buf 2)
              Forward(mb 2, buf 2)
              ReceiveGradient(mb 0, buf 0)
              SendActivation(mb 2, buf 2)
              Backward(mb 0, buf 0)
              SendGradient(mb 0, buf 0)
              ReceiveActivation(mb 3, buf 0)
              Forward(mb 3, buf 0)
              ReceiveGradient(mb 1, buf 1)
              SendActivation(mb 3, buf 0)
              Backward(mb 1, buf 1)
              SendGradient(mb 1, buf 1)
              ReceiveActivation(mb 4, buf 1)
              Forward(mb 4, buf 1)
              ReceiveGradient(mb 2, buf 2)
              SendActivation(mb 4, buf 1)
              Backward(mb 2, buf 2)
              SendGradient(mb 2, buf 2)
              ReceiveActivation(mb 5, buf 2)
              Forward(mb 5, buf 2)
              ReceiveGradient(mb 3, buf 0)
              SendActivation(mb 5, buf 2)
              Backward(mb 3, buf 0)
              SendGradient(mb 3, buf 0)
              ReceiveActivation(mb 6, buf 0)
              Forward(mb 6, buf 0)
              ReceiveGradient(mb 4, buf 1)
              SendActivation(mb 6, buf 0)
              Backward(mb 4, buf 1)
              SendGradient(mb 4, buf 1)
              ReceiveActivation(mb 7, buf 1)
              Forward(mb 7, buf 1)
              ReceiveGradient(mb 5, buf 2)
              SendActivation(mb 7, buf 1)
              Backward(mb 5, buf 2)
              SendGradient(mb 5, buf 2)
              ReceiveGradient(mb 6, buf 0)
              Backward(mb 6, buf 0)
              SendGradient(mb 6, buf 0)
              ReceiveGradient(mb 7, buf 1)
              Backward(mb 7, buf 1)
              SendGradient(mb 7, buf 1)

            """.TrimEnd('\n') + "\n" + Step + """
            stage 2: warm-up 1, buffers 2
              ReceiveActivation(mb 0, buf 0)
              Forward(mb 0, buf 0)
              SendActivation(mb 0, buf 0)
              ReceiveActivation(mb 1, buf 1)
              Forward(mb 1, buf 1)
              ReceiveGradient(mb 0, buf 0)
              SendActivation(mb 1, buf 1)
              Backward(mb 0, buf 0)
              SendGradient(mb 0, buf 0)
              ReceiveActivation(mb 2, buf 0)
              Forward(mb 2, buf 0)
              ReceiveGradient(mb 1, buf 1)
              SendActivation(mb 2, buf 0)
              Backward(mb 1, buf 1)
              SendGradient(mb 1, buf 1)
              ReceiveActivation(mb 3, buf 1)
              Forward(mb 3, buf 1)
              ReceiveGradient(mb 2, buf 0)
              SendActivation(mb 3, buf 1)
              Backward(mb 2, buf 0)
              SendGradient(mb 2, buf 0)
              ReceiveActivation(mb 4, buf 0)
              Forward(mb 4, buf 0)
              ReceiveGradient(mb 3, buf 1)
              SendActivation(mb 4, buf 0)
              Backward(mb 3, buf 1)
              SendGradient(mb 3, buf 1)
              ReceiveActivation(mb 5, buf 1)
              Forward(mb 5, buf 1)
              ReceiveGradient(mb 4, buf 0)
              SendActivation(mb 5, buf 1)
              Backward(mb 4, buf 0)
              SendGradient(mb 4, buf 0)
              ReceiveActivation(mb 6, buf 0)
              Forward(mb 6, buf 0)
              ReceiveGradient(mb 5, buf 1)
              SendActivation(mb 6, buf 0)
              Backward(mb 5, buf 1)
              SendGradient(mb 5, buf 1)
              ReceiveActivation(mb 7, buf 1)
              Forward(mb 7, buf 1)
              ReceiveGradient(mb 6, buf 0)
              SendActivation(mb 7, buf 1)
              Backward(mb 6, buf 0)
              SendGradient(mb 6, buf 0)
              ReceiveGradient(mb 7, buf 1)
              Backward(mb 7, buf 1)
              SendGradient(mb 7, buf 1)

            """.TrimEnd('\n') + "\n" + Step + """
            stage 3: warm-up 0, buffers 2
              ReceiveActivation(mb 0, buf 0)
              LoadMicroBatch(mb 0, buf 0)
              Forward(mb 0, buf 0)
              Backward(mb 0, buf 0)
              SendGradient(mb 0, buf 0)
              ReceiveActivation(mb 1, buf 1)
              LoadMicroBatch(mb 1, buf 1)
              Forward(mb 1, buf 1)
              Backward(mb 1, buf 1)
              SendGradient(mb 1, buf 1)
              ReceiveActivation(mb 2, buf 0)
              LoadMicroBatch(mb 2, buf 0)
              Forward(mb 2, buf 0)
              Backward(mb 2, buf 0)
              SendGradient(mb 2, buf 0)
              ReceiveActivation(mb 3, buf 1)
              LoadMicroBatch(mb 3, buf 1)
              Forward(mb 3, buf 1)
              Backward(mb 3, buf 1)
              SendGradient(mb 3, buf 1)
              ReceiveActivation(mb 4, buf 0)
              LoadMicroBatch(mb 4, buf 0)
              Forward(mb 4, buf 0)
              Backward(mb 4, buf 0)
              SendGradient(mb 4, buf 0)
              ReceiveActivation(mb 5, buf 1)
              LoadMicroBatch(mb 5, buf 1)
              Forward(mb 5, buf 1)
              Backward(mb 5, buf 1)
              SendGradient(mb 5, buf 1)
              ReceiveActivation(mb 6, buf 0)
              LoadMicroBatch(mb 6, buf 0)
              Forward(mb 6, buf 0)
              Backward(mb 6, buf 0)
              SendGradient(mb 6, buf 0)
              ReceiveActivation(mb 7, buf 1)
              LoadMicroBatch(mb 7, buf 1)
              Forward(mb 7, buf 1)
              Backward(mb 7, buf 1)
              SendGradient(mb 7, buf 1)

            """.TrimEnd('\n') + "\n" + Step;

        AssertText(expected, ScheduleText.Format(4, 8));
    }

    [TestMethod]
    public void OneStageAlternatesForwardAndBackward()
    {
        string expected = """
            LoadMicroBatch(mb 0, buf 0)
            Forward(mb 0, buf 0)
            Backward(mb 0, buf 0)
            LoadMicroBatch(mb 1, buf 1)
            Forward(mb 1, buf 1)
            Backward(mb 1, buf 1)
            ReduceTiedGradients
            ReduceGradients
            OptimizerStep

            """;
        AssertText(expected, ScheduleText.Format(OneFOneBSchedule.Build(1, 0, 2)));
    }

    [TestMethod]
    public void FewerMicroBatchesThanStagesOnlyWarmUpAndCoolDown()
    {
        // p = 4, m = 2: stage 0 would warm up with 3 forwards but only has 2, so it never alternates.
        Assert.AreEqual(2, OneFOneBSchedule.WarmupForwards(4, 0, 2));
        Assert.AreEqual(2, OneFOneBSchedule.BufferCount(4, 0, 2));
        string expected = """
            LoadMicroBatch(mb 0, buf 0)
            Forward(mb 0, buf 0)
            SendActivation(mb 0, buf 0)
            LoadMicroBatch(mb 1, buf 1)
            Forward(mb 1, buf 1)
            SendActivation(mb 1, buf 1)
            ReceiveGradient(mb 0, buf 0)
            Backward(mb 0, buf 0)
            ReceiveGradient(mb 1, buf 1)
            Backward(mb 1, buf 1)
            ReduceTiedGradients
            ReduceGradients
            OptimizerStep

            """;
        AssertText(expected, ScheduleText.Format(OneFOneBSchedule.Build(4, 0, 2)));
    }

    [TestMethod]
    public void BuffersFollowDeepSpeed()
    {
        // max(2, min(p − s, m))
        Assert.AreEqual(4, OneFOneBSchedule.BufferCount(4, 0, 8));
        Assert.AreEqual(3, OneFOneBSchedule.BufferCount(4, 1, 8));
        Assert.AreEqual(2, OneFOneBSchedule.BufferCount(4, 2, 8));
        Assert.AreEqual(2, OneFOneBSchedule.BufferCount(4, 3, 8));
        Assert.AreEqual(2, OneFOneBSchedule.BufferCount(1, 0, 1));
        Assert.AreEqual(3, OneFOneBSchedule.BufferCount(8, 0, 3));
    }

    [TestMethod]
    public void InvalidArgumentsAreRejected()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => OneFOneBSchedule.Build(0, 0, 4));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => OneFOneBSchedule.Build(2, 2, 4));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => OneFOneBSchedule.Build(2, -1, 4));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => OneFOneBSchedule.Build(2, 0, 0));
    }

    private static void AssertText(string expected, string actual)
    {
        var a = expected.Replace("\r\n", "\n").Split('\n');
        var b = actual.Split('\n');
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            if (a[i] != b[i]) Assert.Fail($"line {i + 1}: expected '{a[i]}' but got '{b[i]}'\n--- actual ---\n{actual}");
        }
        Assert.AreEqual(a.Length, b.Length, "line count\n--- actual ---\n" + actual);
    }
}
