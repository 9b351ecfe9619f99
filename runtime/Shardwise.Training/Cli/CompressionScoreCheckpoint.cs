using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Cli;

/// <summary>
/// topk pruning's mask scores in a checkpoint: per module <c>MODULE.KIND_scores</c> with its Adam moments
/// (<c>.exp_avg</c>, <c>.exp_avg_sq</c>), and per technique <c>KIND_scores.step</c>. The masks follow from the scores,
/// so a resumed run masks as the saved one would have. Every data rank holds the same scores (their gradients are summed
/// over ranks); rank 0 writes them, a pipeline's gathered from its stages.
/// </summary>
public static class CompressionScoreCheckpoint
{
    public const string FileName = "compression_scores.safetensors";

    private static string Scores(string module, PruningKind kind) => $"{module}.{kind.ToString().ToLowerInvariant()}_scores";

    private static string Step(PruningKind kind) => $"{kind.ToString().ToLowerInvariant()}_scores.step";

    /// <summary>What a checkpoint keeps of the scores: named fp32 tensors, and each technique's step count.</summary>
    public sealed record Snapshot(IReadOnlyList<(string Name, float[] Values)> Tensors, IReadOnlyList<(string Name, long Step)> Steps);

    /// <summary>This rank's scores and moments, for a run whose every rank holds every module (not a pipeline).</summary>
    public static Snapshot? Of(LearnedMasks? learned)
    {
        if (learned is null || learned.Techniques.Count == 0) return null;
        var tensors = new List<(string, float[])>();
        foreach (var technique in learned.Techniques)
        {
            var state = technique.Optimizer.State;
            foreach (var entry in technique.Entries)
            {
                string name = Scores(entry.Module.Name, technique.Kind);
                tensors.Add((name, technique.Scores.AsSpan(entry.Offset, entry.Length).ToArray()));
                tensors.Add((name + ".exp_avg", state.ExpAvg.AsSpan(entry.Offset, entry.Length).ToArray()));
                tensors.Add((name + ".exp_avg_sq", state.ExpAvgSq.AsSpan(entry.Offset, entry.Length).ToArray()));
            }
        }
        return new Snapshot(tensors, learned.Techniques.Select(t => (Step(t.Kind), t.Optimizer.State.Step)).ToList());
    }

    /// <summary>
    /// A pipeline's scores, assembled from its stages as the masks are (<see cref="CompressionMaskCheckpoint.GatherStages"/>):
    /// each stage lays each unit's score and moments over the layout elements it masks (NaN elsewhere), the job gathers
    /// them into the model's layout, and they are read back per module. A technique's step count is the same on every
    /// stage that has its modules; the largest is taken, since a stage may hold none. Every rank must call it.
    /// </summary>
    public static Snapshot GatherStages(Distributed.ICommunicator modelParallel, ModelPartition partition, ParameterLayout model, ParameterLayout stage,
        CompressionTrainingConfig config, LearnedMasks? learned)
    {
        var tensors = new List<(string, float[])>();
        var steps = new List<(string, long)>();
        var wholePlan = CompressionPlan.For(model, config);
        foreach (var kind in WeightCompression.PruningKinds)
        {
            var pruning = WeightCompression.PruningOf(config, kind);
            if (!pruning.Enabled || !pruning.Learned) continue;
            var technique = learned?.Techniques.FirstOrDefault(t => t.Kind == kind);
            var arrays = new[] { new float[stage.TotalElements], new float[stage.TotalElements], new float[stage.TotalElements] };
            foreach (var array in arrays) Array.Fill(array, float.NaN);
            if (technique is not null)
            {
                var state = technique.Optimizer.State;
                var sources = new[] { technique.Scores, state.ExpAvg, state.ExpAvgSq };
                foreach (var entry in technique.Entries)
                    for (int i = 0; i < entry.Module.WeightLength; i++)
                    {
                        int unit = entry.Module.UnitOf(kind, i);
                        for (int a = 0; a < 3; a++) arrays[a][entry.Module.WeightOffset + i] = sources[a][entry.Offset + unit];
                    }
            }
            var full = arrays.Select(array => Pipeline.PartitionedParameters.Gather(modelParallel, partition, model, array)).ToArray();
            foreach (var module in wholePlan.Modules.Where(m => m.DenseRatioOf(kind) is not null))
            {
                // Each unit's values, read at its first element.
                string name = Scores(module.Name, kind);
                for (int a = 0; a < 3; a++)
                    tensors.Add((name + new[] { "", ".exp_avg", ".exp_avg_sq" }[a],
                        Enumerable.Range(0, module.UnitsOf(kind)).Select(u => full[a][module.WeightOffset + module.FirstElementOf(kind, u)]).ToArray()));
            }
            var step = new double[] { technique?.Optimizer.State.Step ?? 0 };
            modelParallel.AllReduceMax(step);
            steps.Add((Step(kind), (long)step[0]));
        }
        return new Snapshot(tensors, steps);
    }

    public static void Write(CheckpointWriter writer, Snapshot? snapshot)
    {
        if (snapshot is null || snapshot.Tensors.Count == 0) return;
        var specs = snapshot.Tensors.Select(t => new SafeTensorSpec(t.Name, SafeTensorDType.F32, t.Values.LongLength))
            .Concat(snapshot.Steps.Select(s => new SafeTensorSpec(s.Name, SafeTensorDType.I64))).ToList();
        using var file = writer.CreateSafeTensors(FileName, specs);
        foreach (var (name, values) in snapshot.Tensors) file.Write(name, values);
        foreach (var (name, step) in snapshot.Steps) file.Write(name, new[] { step });
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
