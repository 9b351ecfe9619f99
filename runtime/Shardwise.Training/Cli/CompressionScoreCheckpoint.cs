using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Cli;

/// <summary>
/// topk pruning's mask scores in a checkpoint: per module <c>MODULE.KIND_scores</c> with its Adam moments
/// (<c>.exp_avg</c>, <c>.exp_avg_sq</c>), and per technique <c>KIND_scores.step</c>. The masks follow from the scores,
/// so a resumed run masks as the saved one would have. Every rank holds the same scores (their gradients are summed over
/// ranks); rank 0 writes them.
/// </summary>
internal static class CompressionScoreCheckpoint
{
    public const string FileName = "compression_scores.safetensors";

    private static string Scores(string module, PruningKind kind) => $"{module}.{kind.ToString().ToLowerInvariant()}_scores";

    private static string Step(PruningKind kind) => $"{kind.ToString().ToLowerInvariant()}_scores.step";

    public static void Write(CheckpointWriter writer, LearnedMasks? learned)
    {
        if (learned is null || learned.Techniques.Count == 0) return;
        var specs = new List<SafeTensorSpec>();
        foreach (var technique in learned.Techniques)
        {
            foreach (var entry in technique.Entries)
                foreach (string suffix in new[] { "", ".exp_avg", ".exp_avg_sq" })
                    specs.Add(new SafeTensorSpec(Scores(entry.Module.Name, technique.Kind) + suffix, SafeTensorDType.F32, entry.Length));
            specs.Add(new SafeTensorSpec(Step(technique.Kind), SafeTensorDType.I64));
        }
        using var file = writer.CreateSafeTensors(FileName, specs);
        foreach (var technique in learned.Techniques)
        {
            var state = technique.Optimizer.State;
            foreach (var entry in technique.Entries)
            {
                string name = Scores(entry.Module.Name, technique.Kind);
                file.Write(name, technique.Scores.AsSpan(entry.Offset, entry.Length));
                file.Write(name + ".exp_avg", state.ExpAvg.AsSpan(entry.Offset, entry.Length));
                file.Write(name + ".exp_avg_sq", state.ExpAvgSq.AsSpan(entry.Offset, entry.Length));
            }
            file.Write(Step(technique.Kind), new[] { state.Step });
        }
        file.Complete();
    }

    /// <summary>
    /// Puts the scores back before the weights are imported (whose refresh takes the masks from them). A checkpoint
    /// without a technique's scores (saved before it was configured) leaves that technique's fresh scores, with a note.
    /// </summary>
    public static void Restore(string checkpoint, LearnedMasks? learned, TextWriter? log)
    {
        if (learned is null || learned.Techniques.Count == 0) return;
        string path = Path.Combine(checkpoint, FileName);
        using var reader = File.Exists(path) ? SafeTensorsReader.Open(path) : null;
        foreach (var technique in learned.Techniques)
        {
            string kind = technique.Kind.ToString().ToLowerInvariant();
            if (reader is null || !reader.Contains(Step(technique.Kind)))
            {
                log?.WriteLine($"note: the checkpoint has no {kind} pruning scores; they start from their initialization");
                continue;
            }
            var state = technique.Optimizer.State;
            foreach (var entry in technique.Entries)
            {
                string name = Scores(entry.Module.Name, technique.Kind);
                foreach (var (suffix, into) in new[] { ("", technique.Scores), (".exp_avg", state.ExpAvg), (".exp_avg_sq", state.ExpAvgSq) })
                {
                    if (!reader.Contains(name + suffix) || reader.GetInfo(name + suffix).ElementCount != entry.Length)
                        throw new CliException($"--resume {checkpoint}: {FileName} has no {entry.Length}-element {name + suffix} for this config's {kind} pruning of {entry.Module.Name}");
                    reader.Read(name + suffix, into.AsSpan(entry.Offset, entry.Length));
                }
            }
            var step = new long[1];
            reader.Read(Step(technique.Kind), step.AsSpan());
            state.Step = step[0];
        }
    }
}
