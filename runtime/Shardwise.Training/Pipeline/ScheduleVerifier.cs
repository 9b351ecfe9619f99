using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Shardwise.Training.Pipeline;

/// <summary>A forward or backward of one micro-batch occupying one time slot of a stage.</summary>
public readonly record struct ComputeSlot(bool IsForward, int MicroBatch);

/// <summary>
/// What <see cref="ScheduleVerifier"/> found: the errors (none for a correct schedule), and the simulated timeline
/// with unit-cost forwards and backwards: <see cref="Makespan"/> slots, of which <see cref="IdleSlots"/> stage-slots
/// were idle. <see cref="Slots"/>[stage][t] is what the stage computed in slot t (null when idle).
/// </summary>
public sealed record ScheduleVerification(
    int Stages,
    int MicroBatches,
    IReadOnlyList<string> Errors,
    long Makespan,
    long IdleSlots,
    IReadOnlyList<IReadOnlyList<ComputeSlot?>> Slots)
{
    public bool IsValid => Errors.Count == 0;

    /// <summary>Idle stage-slots over all stage-slots of the batch: (p − 1)/(m + p − 1) for 1F1B.</summary>
    public double Bubble => Makespan == 0 ? 0 : IdleSlots / (double)(Stages * Makespan);
}

/// <summary>
/// Proves a pipeline schedule by checking each stage's program and then simulating all stages together with blocking
/// point-to-point semantics: a send and the matching receive on the neighbouring stage complete together
/// (rendezvous), and a send can only meet the neighbour's next receive of the same kind, which must be for the same
/// micro-batch. Forwards and backwards take one time slot; loads, transfers, reductions and the step take none.
/// </summary>
public static class ScheduleVerifier
{
    /// <summary>Verifies the 1F1B schedule built by <see cref="OneFOneBSchedule"/>, bubble formula included.</summary>
    public static ScheduleVerification Verify(int stages, int microBatches)
        => Verify(OneFOneBSchedule.BuildAll(stages, microBatches), microBatches, checkBubble: true);

    /// <summary>
    /// Verifies any per-stage programs (stage 0 first) over <paramref name="microBatches"/> micro-batches. Checks:
    /// every micro-batch is forwarded and then backwarded exactly once per stage, forwards and backwards each in
    /// micro-batch order; every forward after its activation arrives (or its load) and every backward after its
    /// gradient arrives; each send after the compute that produces it; each send matched by the neighbour's receive
    /// and no deadlock; a micro-batch keeps one buffer slot, and no two live micro-batches share one; the reductions and
    /// the optimizer step end every program; and, with <paramref name="checkBubble"/>, that the idle fraction is exactly
    /// (p − 1)/(m + p − 1).
    /// </summary>
    public static ScheduleVerification Verify(IReadOnlyList<IReadOnlyList<PipeInstruction>> programs, int microBatches, bool checkBubble = true)
    {
        if (programs.Count < 1) throw new ArgumentException("a pipeline has at least one stage", nameof(programs));
        if (microBatches < 1) throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, "at least one micro-batch");

        var errors = new List<string>();
        for (int s = 0; s < programs.Count; s++) CheckProgram(s, programs.Count, programs[s], microBatches, errors);

        var (makespan, slots) = Simulate(programs, errors);
        long busy = slots.Sum(row => row.Count(slot => slot is not null));
        long idle = programs.Count * makespan - busy;

        if (checkBubble && errors.Count == 0)
        {
            int p = programs.Count;
            // idle / (p·T) == (p − 1)/(m + p − 1), compared exactly.
            if (idle * (microBatches + p - 1) != (long)(p - 1) * p * makespan)
            {
                errors.Add(string.Format(CultureInfo.InvariantCulture,
                    "bubble: {0} of {1} stage-slots idle ({2:0.####}), but 1F1B's bubble is (p − 1)/(m + p − 1) = {3}/{4}",
                    idle, p * makespan, idle / (double)(p * makespan), p - 1, microBatches + p - 1));
            }
        }

        return new ScheduleVerification(programs.Count, microBatches, errors, makespan, idle, slots);
    }

    private static void CheckProgram(int stage, int stages, IReadOnlyList<PipeInstruction> program, int microBatches, List<string> errors)
    {
        bool first = stage == 0, last = stage == stages - 1;
        string where = "stage " + stage.ToString(CultureInfo.InvariantCulture);

        var positions = new Dictionary<(Type, int), List<int>>();
        var span = new Dictionary<int, (int First, int Last, int Buffer)>();
        var forwardOrder = new List<int>();
        var backwardOrder = new List<int>();
        for (int k = 0; k < program.Count; k++)
        {
            if (program[k] is not BufferInstruction op) continue;
            if (op.MicroBatch < 0 || op.MicroBatch >= microBatches)
            {
                errors.Add($"{where}: {ScheduleText.Format(op)} names a micro-batch outside 0..{microBatches - 1}");
                continue;
            }
            if (op.Buffer < 0) errors.Add($"{where}: {ScheduleText.Format(op)} uses a negative buffer slot");

            var key = (op.GetType(), op.MicroBatch);
            if (!positions.TryGetValue(key, out var list)) positions[key] = list = new List<int>();
            list.Add(k);

            if (span.TryGetValue(op.MicroBatch, out var used))
            {
                if (used.Buffer != op.Buffer)
                    errors.Add($"{where}: {ScheduleText.Format(op)} moves micro-batch {op.MicroBatch} out of buffer {used.Buffer}");
                span[op.MicroBatch] = (used.First, k, used.Buffer);
            }
            else
            {
                span[op.MicroBatch] = (k, k, op.Buffer);
            }

            if (op is Forward) forwardOrder.Add(op.MicroBatch);
            if (op is Backward) backwardOrder.Add(op.MicroBatch);
        }

        for (int mb = 0; mb < microBatches; mb++)
        {
            int forward = Single<Forward>(positions, mb, where, errors);
            int backward = Single<Backward>(positions, mb, where, errors);
            if (forward >= 0 && backward >= 0 && backward < forward)
                errors.Add($"{where}: the backward of micro-batch {mb} runs before its forward");

            Expect<ReceiveActivation>(positions, mb, !first, forward, before: true, where, "it has no previous stage", errors);
            Expect<LoadMicroBatch>(positions, mb, first || last, forward, before: true, where, "only the first and last stages load data", errors);
            Expect<SendActivation>(positions, mb, !last, forward, before: false, where, "it has no next stage", errors);
            Expect<ReceiveGradient>(positions, mb, !last, backward, before: true, where, "it has no next stage", errors);
            Expect<SendGradient>(positions, mb, !first, backward, before: false, where, "it has no previous stage", errors);
        }

        if (!forwardOrder.SequenceEqual(forwardOrder.OrderBy(x => x)))
            errors.Add($"{where}: forwards run out of micro-batch order ({string.Join(", ", forwardOrder)})");
        if (!backwardOrder.SequenceEqual(backwardOrder.OrderBy(x => x)))
            errors.Add($"{where}: backwards run out of micro-batch order ({string.Join(", ", backwardOrder)})");

        // A buffer slot is live from the micro-batch's first instruction to its last; two live micro-batches must not share it.
        foreach (var group in span.GroupBy(pair => pair.Value.Buffer))
        {
            var ordered = group.OrderBy(pair => pair.Value.First).ToList();
            for (int i = 1; i < ordered.Count; i++)
            {
                if (ordered[i].Value.First <= ordered[i - 1].Value.Last)
                {
                    errors.Add(string.Format(CultureInfo.InvariantCulture,
                        "{0}: buffer {1} is overwritten by micro-batch {2} while micro-batch {3} still uses it",
                        where, group.Key, ordered[i].Key, ordered[i - 1].Key));
                }
            }
        }

        int n = program.Count;
        bool endsWithStep = n >= 3 && program[n - 3] is ReduceTiedGradients && program[n - 2] is ReduceGradients && program[n - 1] is OptimizerStep;
        int batchWide = program.Count(i => i is ReduceTiedGradients or ReduceGradients or OptimizerStep);
        if (!endsWithStep || batchWide != 3)
            errors.Add($"{where}: the program must end with ReduceTiedGradients, ReduceGradients, OptimizerStep, once each");
    }

    private static int Single<T>(Dictionary<(Type, int), List<int>> positions, int mb, string where, List<string> errors)
    {
        int count = positions.TryGetValue((typeof(T), mb), out var list) ? list.Count : 0;
        if (count == 1) return list![0];
        errors.Add($"{where}: {typeof(T).Name} of micro-batch {mb} appears {count} times, expected once");
        return -1;
    }

    /// <summary>
    /// Instruction <typeparamref name="T"/> on <paramref name="mb"/> must appear once when <paramref name="required"/>
    /// (before or after the compute at <paramref name="anchor"/>), and never otherwise.
    /// </summary>
    private static void Expect<T>(Dictionary<(Type, int), List<int>> positions, int mb, bool required, int anchor, bool before,
        string where, string whyNot, List<string> errors)
    {
        int count = positions.TryGetValue((typeof(T), mb), out var list) ? list.Count : 0;
        string name = typeof(T).Name;
        if (!required)
        {
            if (count > 0) errors.Add($"{where}: {name} of micro-batch {mb}, but {whyNot}");
            return;
        }
        if (count != 1)
        {
            errors.Add($"{where}: {name} of micro-batch {mb} appears {count} times, expected once");
            return;
        }
        if (anchor < 0) return;
        int at = list![0];
        if (before && at > anchor) errors.Add($"{where}: {name} of micro-batch {mb} comes after the compute that needs it");
        if (!before && at < anchor) errors.Add($"{where}: {name} of micro-batch {mb} comes before the compute that produces it");
    }

    private static (long Makespan, IReadOnlyList<IReadOnlyList<ComputeSlot?>> Slots) Simulate(
        IReadOnlyList<IReadOnlyList<PipeInstruction>> programs, List<string> errors)
    {
        int p = programs.Count;
        var pc = new int[p];
        var clock = new long[p];
        var computed = new List<(long Start, ComputeSlot Slot)>[p];
        for (int s = 0; s < p; s++) computed[s] = new List<(long, ComputeSlot)>();

        bool Done(int s) => pc[s] >= programs[s].Count;

        while (true)
        {
            bool progressed = false;
            for (int s = 0; s < p; s++)
            {
                while (!Done(s))
                {
                    var instruction = programs[s][pc[s]];
                    if (instruction is Forward or Backward)
                    {
                        var op = (BufferInstruction)instruction;
                        computed[s].Add((clock[s], new ComputeSlot(op is Forward, op.MicroBatch)));
                        clock[s]++;
                        pc[s]++;
                        progressed = true;
                        continue;
                    }
                    if (instruction is not (SendActivation or ReceiveActivation or SendGradient or ReceiveGradient))
                    {
                        pc[s]++; // loads, reductions and the step take no time
                        progressed = true;
                        continue;
                    }

                    var transfer = (BufferInstruction)instruction;
                    var (neighbour, partnerType) = transfer switch
                    {
                        SendActivation => (s + 1, typeof(ReceiveActivation)),
                        ReceiveActivation => (s - 1, typeof(SendActivation)),
                        SendGradient => (s - 1, typeof(ReceiveGradient)),
                        _ => (s + 1, typeof(SendGradient)),
                    };
                    if (neighbour < 0 || neighbour >= p)
                    {
                        errors.Add($"simulation: stage {s} runs {ScheduleText.Format(transfer)} but there is no stage {neighbour}");
                        return Finish(p, clock, computed);
                    }
                    if (Done(neighbour) || programs[neighbour][pc[neighbour]].GetType() != partnerType) break; // blocked
                    var partner = (BufferInstruction)programs[neighbour][pc[neighbour]];
                    if (partner.MicroBatch != transfer.MicroBatch)
                    {
                        errors.Add($"simulation: stage {s} runs {ScheduleText.Format(transfer)} while stage {neighbour} runs {ScheduleText.Format(partner)}: the micro-batches differ");
                        return Finish(p, clock, computed);
                    }
                    long meet = Math.Max(clock[s], clock[neighbour]);
                    clock[s] = clock[neighbour] = meet;
                    pc[s]++;
                    pc[neighbour]++;
                    progressed = true;
                }
            }

            if (Enumerable.Range(0, p).All(Done)) return Finish(p, clock, computed);
            if (!progressed)
            {
                var waiting = Enumerable.Range(0, p).Where(s => !Done(s))
                    .Select(s => $"stage {s} at {ScheduleText.Format(programs[s][pc[s]])}");
                errors.Add("simulation: deadlock: " + string.Join("; ", waiting));
                return Finish(p, clock, computed);
            }
        }
    }

    private static (long, IReadOnlyList<IReadOnlyList<ComputeSlot?>>) Finish(int p, long[] clock, List<(long Start, ComputeSlot Slot)>[] computed)
    {
        long makespan = clock.Max();
        var slots = new IReadOnlyList<ComputeSlot?>[p];
        for (int s = 0; s < p; s++)
        {
            var row = new ComputeSlot?[makespan];
            foreach (var (start, slot) in computed[s]) row[start] = slot;
            slots[s] = row;
        }
        return (makespan, slots);
    }
}
