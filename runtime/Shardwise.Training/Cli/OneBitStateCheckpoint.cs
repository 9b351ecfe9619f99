using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Cli;

/// <summary>
/// A 1-bit optimizer's state beyond Adam's moments (<see cref="IOneBitOptimizer.CheckpointState"/>), kept in
/// optimizer.safetensors beside them so that a resumed run continues bit for bit: per-parameter arrays as
/// <c>TENSOR.NAME</c> (like the moments), vectors whole as F64 <c>NAME</c>. At ZeRO stage 0, which the 1-bit optimizers
/// need, the data-parallel ranks hold the same state (0/1 Adam's agree at its synchronisations), so replica 0's is the
/// run's; a pipelined run gathers its stages' per-parameter arrays into the model's layout first, like the moments.
/// </summary>
internal static class OneBitStateCheckpoint
{
    public static IEnumerable<SafeTensorSpec> Specs(ParameterLayout layout, IReadOnlyList<OptimizerStateTensor> states)
    {
        foreach (var state in states)
        {
            if (state.PerParameter is not null)
            {
                foreach (var spec in TrainingCheckpoint.Specs(layout, "." + state.Name)) yield return spec;
            }
            else yield return new SafeTensorSpec(state.Name, SafeTensorDType.F64, state.Values!.Length);
        }
    }

    /// <summary>Writes <paramref name="states"/>, whose per-parameter arrays are laid out as <paramref name="layout"/>.</summary>
    public static void Write(SafeTensorsWriter file, ParameterLayout layout, IReadOnlyList<OptimizerStateTensor> states)
    {
        foreach (var state in states)
        {
            if (state.PerParameter is { } array)
            {
                foreach (var slot in layout.Slots) file.Write(slot.Name + "." + state.Name, TrainingCheckpoint.Slice(array, slot));
            }
            else file.Write(state.Name, state.Values);
        }
    }

    /// <summary>Fresh arrays shaped like <paramref name="states"/>, per-parameter ones for <paramref name="elements"/> elements.</summary>
    public static IReadOnlyList<OptimizerStateTensor> Allocate(IReadOnlyList<OptimizerStateTensor> states, long elements) =>
        states.Select(s => s.PerParameter is not null ? s with { PerParameter = new float[elements] } : s with { Values = new double[s.Values!.Length] }).ToList();

    /// <summary>Restores the optimizer's own state in place (its arrays are laid out as <paramref name="layout"/>).</summary>
    public static void Restore(string checkpoint, ParameterLayout layout, IOneBitOptimizer optimizer, TextWriter? log)
        => Restore(checkpoint, layout, optimizer.CheckpointState, optimizer, log);

    /// <summary>
    /// Fills <paramref name="states"/> (laid out as <paramref name="layout"/>) from <paramref name="checkpoint"/>; returns
    /// false when the checkpoint has no such state. A checkpoint another optimizer wrote has none: the state starts
    /// afresh (a note says so) unless the optimizer says why it cannot (<see cref="IOneBitOptimizer.WhyStateIsNeeded"/>).
    /// </summary>
    public static bool Restore(string checkpoint, ParameterLayout layout, IReadOnlyList<OptimizerStateTensor> states, IOneBitOptimizer optimizer, TextWriter? log)
    {
        if (states.Count == 0) return false;
        string path = Path.Combine(checkpoint, TrainingCheckpoint.OptimizerFile);
        using var reader = File.Exists(path) ? SafeTensorsReader.Open(path) : null;
        string first = states[0].PerParameter is not null ? layout.Slots[0].Name + "." + states[0].Name : states[0].Name;
        if (reader is null || !reader.Contains(first))
        {
            string names = string.Join(", ", states.Select(s => s.PerParameter is not null ? "*." + s.Name : s.Name));
            if (optimizer.WhyStateIsNeeded() is { } reason)
                throw new CliException($"--resume {checkpoint}: no {optimizer.Name} state ({names}) in {TrainingCheckpoint.OptimizerFile}: another optimizer wrote it, and {reason}");
            log?.WriteLine($"note: the checkpoint holds no {optimizer.Name} state ({names}); it starts afresh");
            return false;
        }

        foreach (var state in states)
        {
            if (state.PerParameter is { } array)
            {
                foreach (var slot in layout.Slots)
                {
                    string name = slot.Name + "." + state.Name;
                    if (!reader.Contains(name) || reader.GetInfo(name).ElementCount != slot.Length)
                        throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' is missing or has another shape; was the checkpoint written by a different model?");
                    reader.Read(name, TrainingCheckpoint.Slice(array, slot));
                }
            }
            else
            {
                var values = state.Values!;
                if (!reader.Contains(state.Name) || reader.GetInfo(state.Name).ElementCount != values.Length)
                    throw new InvalidDataException($"{reader.FilePath}: tensor '{state.Name}' is missing or does not have {values.Length} elements");
                reader.Read(state.Name, values);
            }
        }
        return true;
    }
}
