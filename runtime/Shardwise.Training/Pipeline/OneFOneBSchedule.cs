using System;
using System.Collections.Generic;

namespace Shardwise.Training.Pipeline;

/// <summary>
/// The 1F1B (PipeDream-Flush) training schedule for one stage of a <c>stages</c>-deep pipeline over
/// <c>microBatches</c> micro-batches: <see cref="WarmupForwards"/> forwards, then one forward and one backward
/// alternately, then the remaining backwards, then <see cref="ReduceTiedGradients"/>, <see cref="ReduceGradients"/>
/// and <see cref="OptimizerStep"/>. The compute order is DeepSpeed's <c>TrainSchedule</c>; so are the buffer count and
/// the placement of the point-to-point transfers, which is what makes the schedule deadlock-free with blocking
/// (rendezvous) sends:
/// <list type="bullet">
/// <item>a forward is preceded by its <see cref="ReceiveActivation"/> (and a <see cref="LoadMicroBatch"/> on the first and
/// last stage);</item>
/// <item>its <see cref="SendActivation"/> follows at once, except in the steady phase, where the forward is paired with the
/// backward that comes next: then the stage first receives that backward's gradient and only then sends the
/// activation, mirroring the next stage, which sends that gradient before it receives the activation. (After the
/// last warm-up forward the early receive would deadlock: the next stage needs the activation to make the gradient.)</item>
/// <item>a backward is followed at once by its <see cref="SendGradient"/>.</item>
/// </list>
/// <see cref="ScheduleVerifier"/> simulates all stages together and proves the result for every small pipeline.
/// </summary>
public static class OneFOneBSchedule
{
    /// <summary>Forwards a stage runs before its first backward: min(stages − stage − 1, microBatches).</summary>
    public static int WarmupForwards(int stages, int stage, int microBatches)
    {
        Check(stages, stage, microBatches);
        return Math.Min(stages - stage - 1, microBatches);
    }

    /// <summary>
    /// Activation buffer slots a stage needs: max(2, min(stages − stage, microBatches)) (DeepSpeed's
    /// <c>num_pipe_buffers</c>); micro-batch i uses slot i mod buffers. At most stages − stage micro-batches are in
    /// flight on a stage at once, so a slot is never reused while its micro-batch is live.
    /// </summary>
    public static int BufferCount(int stages, int stage, int microBatches)
    {
        Check(stages, stage, microBatches);
        return Math.Max(2, Math.Min(stages - stage, microBatches));
    }

    /// <summary>The instructions of <paramref name="stage"/> (0-based) for one training batch.</summary>
    public static IReadOnlyList<PipeInstruction> Build(int stages, int stage, int microBatches)
    {
        int warmup = WarmupForwards(stages, stage, microBatches);
        int buffers = BufferCount(stages, stage, microBatches);
        bool first = stage == 0, last = stage == stages - 1;

        // Compute order: warm-up forwards, forward/backward pairs, cool-down backwards.
        var order = new List<(bool IsForward, int MicroBatch)>();
        int forwards = 0, backwards = 0;
        while (forwards < warmup) order.Add((true, forwards++));
        while (forwards < microBatches)
        {
            order.Add((true, forwards++));
            order.Add((false, backwards++));
        }
        while (backwards < microBatches) order.Add((false, backwards++));

        var program = new List<PipeInstruction>();
        int gradientReceived = -1; // a backward whose ReceiveGradient was issued early, before the previous forward's send
        for (int k = 0; k < order.Count; k++)
        {
            var (isForward, mb) = order[k];
            int buffer = mb % buffers;
            if (isForward)
            {
                if (!first) program.Add(new ReceiveActivation(mb, buffer));
                if (first || last) program.Add(new LoadMicroBatch(mb, buffer));
                program.Add(new Forward(mb, buffer));
                if (last) continue;
                if (mb >= warmup) // a steady-phase forward: its paired backward comes next
                {
                    int next = order[k + 1].MicroBatch;
                    program.Add(new ReceiveGradient(next, next % buffers));
                    gradientReceived = next;
                }
                program.Add(new SendActivation(mb, buffer));
            }
            else
            {
                if (!last && gradientReceived != mb) program.Add(new ReceiveGradient(mb, buffer));
                program.Add(new Backward(mb, buffer));
                if (!first) program.Add(new SendGradient(mb, buffer));
            }
        }

        program.Add(new ReduceTiedGradients());
        program.Add(new ReduceGradients());
        program.Add(new OptimizerStep());
        return program;
    }

    /// <summary>Every stage's instructions, stage 0 first.</summary>
    public static IReadOnlyList<IReadOnlyList<PipeInstruction>> BuildAll(int stages, int microBatches)
    {
        var programs = new IReadOnlyList<PipeInstruction>[stages];
        for (int s = 0; s < stages; s++) programs[s] = Build(stages, s, microBatches);
        return programs;
    }

    /// <summary>The idle fraction of 1F1B with equal forward and backward times: (p − 1)/(m + p − 1).</summary>
    public static double BubbleFraction(int stages, int microBatches)
    {
        Check(stages, 0, microBatches);
        return (stages - 1) / (double)(microBatches + stages - 1);
    }

    private static void Check(int stages, int stage, int microBatches)
    {
        if (stages < 1) throw new ArgumentOutOfRangeException(nameof(stages), stages, "a pipeline has at least one stage");
        if (stage < 0 || stage >= stages) throw new ArgumentOutOfRangeException(nameof(stage), stage, $"stages are numbered 0..{stages - 1}");
        if (microBatches < 1) throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, "at least one micro-batch");
    }
}
