using System;
using System.Collections.Generic;
using System.IO;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Cli;

/// <summary>
/// 1-bit Lamb's state beyond Adam's moments, kept in optimizer.safetensors beside them so that a resumed run continues
/// bit for bit: the fresh variance per parameter tensor (<c>NAME.exp_avg_sq_fresh</c>, like the moments) and two float64
/// vectors with one element per tensor in layout order, <c>lamb_coeff_freeze</c> and <c>last_factor</c> (DeepSpeed's names).
/// Every rank holds the same values (they are computed from averaged quantities), so rank 0's are the run's.
/// </summary>
internal static class OneBitLambCheckpoint
{
    private const string FreshSuffix = ".exp_avg_sq_fresh", FrozenCoefficients = "lamb_coeff_freeze", LastFactors = "last_factor";

    public static IEnumerable<SafeTensorSpec> Specs(ParameterLayout layout)
    {
        foreach (var slot in layout.Slots)
            yield return new SafeTensorSpec(slot.Name + FreshSuffix, SafeTensorDType.F32, Array.ConvertAll(slot.Shape, d => (long)d));
        yield return new SafeTensorSpec(FrozenCoefficients, SafeTensorDType.F64, layout.Slots.Count);
        yield return new SafeTensorSpec(LastFactors, SafeTensorDType.F64, layout.Slots.Count);
    }

    public static void Write(SafeTensorsWriter file, ParameterLayout layout, OneBitLamb lamb)
    {
        foreach (var slot in layout.Slots) file.Write(slot.Name + FreshSuffix, lamb.FreshVariance.AsSpan(checked((int)slot.Offset), checked((int)slot.Length)));
        file.Write(FrozenCoefficients, lamb.FrozenCoefficients);
        file.Write(LastFactors, lamb.LastFactors);
    }

    /// <summary>
    /// Restores the state from <paramref name="checkpoint"/>. A checkpoint another optimizer wrote has none: within the
    /// warm-up the state starts afresh (the coefficients are averaged from then on, as DeepSpeed restarts them on every
    /// load in the warm-up); past the freeze step that would zero every update, so it is an error.
    /// </summary>
    public static void Restore(string checkpoint, ParameterLayout layout, OneBitLamb lamb, TextWriter? log)
    {
        string path = Path.Combine(checkpoint, TrainingCheckpoint.OptimizerFile);
        using var reader = File.Exists(path) ? SafeTensorsReader.Open(path) : null;
        if (reader is null || !reader.Contains(FrozenCoefficients))
        {
            if (lamb.Compressing)
                throw new CliException($"--resume {checkpoint}: no 1-bit Lamb state ({FrozenCoefficients}, {LastFactors}, *{FreshSuffix}) in {TrainingCheckpoint.OptimizerFile}: another optimizer wrote it, and this run is past its freeze step ({lamb.Adam.State.Step} >= {lamb.FreezeStep}), where the frozen trust ratios would be 0; resume it with that optimizer, or raise freeze_step");
            log?.WriteLine($"note: the checkpoint holds no 1-bit Lamb state; its trust ratios are averaged afresh over the rest of the warm-up (to step {lamb.FreezeStep})");
            return;
        }

        foreach (var slot in layout.Slots)
        {
            string name = slot.Name + FreshSuffix;
            if (!reader.Contains(name) || reader.GetInfo(name).ElementCount != slot.Length)
                throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' is missing or has another shape; was the checkpoint written by a different model?");
            reader.Read(name, lamb.FreshVariance.AsSpan(checked((int)slot.Offset), checked((int)slot.Length)));
        }
        foreach (var (name, target) in new[] { (FrozenCoefficients, lamb.FrozenCoefficients), (LastFactors, lamb.LastFactors) })
        {
            if (!reader.Contains(name) || reader.GetInfo(name).ElementCount != target.Length)
                throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' is missing or does not have {target.Length} elements (one per parameter tensor)");
            reader.Read(name, target);
        }
    }
}
