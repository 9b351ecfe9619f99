using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Shardwise.Training.Pipeline;

/// <summary>Stable text for schedules (one instruction per line) and for simulated timelines, for tests and plans.</summary>
public static class ScheduleText
{
    /// <summary>One instruction: <c>Forward(mb 3, buf 1)</c>, or the bare name of a batch-wide instruction.</summary>
    public static string Format(PipeInstruction instruction) => instruction switch
    {
        BufferInstruction op => string.Format(CultureInfo.InvariantCulture, "{0}(mb {1}, buf {2})", Name(op), op.MicroBatch, op.Buffer),
        _ => Name(instruction),
    };

    /// <summary>One instruction per line, each ending in a newline.</summary>
    public static string Format(IEnumerable<PipeInstruction> program)
    {
        var text = new StringBuilder();
        foreach (var instruction in program) text.Append(Format(instruction)).Append('\n');
        return text.ToString();
    }

    /// <summary>Every stage's 1F1B program under a header giving its warm-up and buffer counts.</summary>
    public static string Format(int stages, int microBatches)
    {
        var text = new StringBuilder();
        text.Append(string.Format(CultureInfo.InvariantCulture, "1F1B schedule: {0} stages, {1} micro-batches\n", stages, microBatches));
        for (int s = 0; s < stages; s++)
        {
            text.Append(string.Format(CultureInfo.InvariantCulture, "stage {0}: warm-up {1}, buffers {2}\n",
                s, OneFOneBSchedule.WarmupForwards(stages, s, microBatches), OneFOneBSchedule.BufferCount(stages, s, microBatches)));
            foreach (var instruction in OneFOneBSchedule.Build(stages, s, microBatches)) text.Append("  ").Append(Format(instruction)).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>
    /// The simulated timeline, one row per stage and one column per time slot: <c>F3</c>/<c>B3</c> for a forward or
    /// backward of micro-batch 3, dots for an idle slot; then the measured bubble.
    /// </summary>
    public static string Timeline(ScheduleVerification verification)
    {
        int width = 1 + Math.Max(1, (Math.Max(1, verification.MicroBatches) - 1).ToString(CultureInfo.InvariantCulture).Length);
        var text = new StringBuilder();
        for (int s = 0; s < verification.Slots.Count; s++)
        {
            text.Append(string.Format(CultureInfo.InvariantCulture, "stage {0}:", s));
            foreach (var slot in verification.Slots[s])
            {
                string cell = slot is null ? new string('.', width) : (slot.Value.IsForward ? "F" : "B") + slot.Value.MicroBatch.ToString(CultureInfo.InvariantCulture);
                text.Append(' ').Append(cell.PadRight(width));
            }
            text.Length = text.Length - CountTrailingSpaces(text);
            text.Append('\n');
        }
        text.Append(string.Format(CultureInfo.InvariantCulture, "bubble: {0} of {1} stage-slots idle ({2:0.0}%)\n",
            verification.IdleSlots, (long)verification.Stages * verification.Makespan, 100 * verification.Bubble));
        return text.ToString();
    }

    private static int CountTrailingSpaces(StringBuilder text)
    {
        int count = 0;
        while (count < text.Length && text[text.Length - 1 - count] == ' ') count++;
        return count;
    }

    private static string Name(PipeInstruction instruction) => instruction switch
    {
        LoadMicroBatch => "LoadMicroBatch",
        Forward => "Forward",
        Backward => "Backward",
        SendActivation => "SendActivation",
        ReceiveActivation => "ReceiveActivation",
        SendGradient => "SendGradient",
        ReceiveGradient => "ReceiveGradient",
        ReduceTiedGradients => "ReduceTiedGradients",
        ReduceGradients => "ReduceGradients",
        OptimizerStep => "OptimizerStep",
        _ => instruction.GetType().Name,
    };
}
