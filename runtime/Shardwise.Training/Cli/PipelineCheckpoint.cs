using System.Linq;
using System.IO;
using Shardwise.Data;
using Shardwise.Plans;
using Shardwise.Training.Pipeline;

namespace Shardwise.Training.Cli;

/// <summary>
/// Checkpoints of a pipelined / tensor-parallel run in exactly the one-process format (<see cref="TrainingCheckpoint"/>),
/// so either kind of run resumes the other. Saving: each engine first assembles its stage's local fp32 state (master
/// weights, both Adam moments) from its ZeRO data group; replica 0's stages then stream it to world rank 0 a parameter
/// at a time (<see cref="PartitionedParameters.StreamToFirst"/>), which writes each into the files with the same atomic
/// store, so no rank holds the model's full state. Loading reads, parameter by parameter, only the parameters each stage
/// holds and
/// keeps its tensor rank's slices: a pure function of the layout, so the writer's rank count does not matter.
/// </summary>
public static class PipelineCheckpoint
{
    /// <summary>A collective over the whole job. Returns the checkpoint's path on world rank 0, null elsewhere.</summary>
    public static string? Save(TrainingCheckpoint store, PipelineEngine engine, ModelPartition partition, ParameterLayout model,
        BatchSampler sampler, ITokenizer tokenizer, RunSettings settings)
    {
        var groups = engine.Groups;
        var (master, expAvg, expAvgSq) = engine.Engine.ExportFullState(); // collective over the data group (ZeRO-1)
        // A 1-bit optimizer's per-parameter state is gathered like the moments; its vectors are the same on every stage.
        var oneBitState = engine.Engine.OneBit?.CheckpointState
            .Select(s => s.PerParameter is { } local ? s with { PerParameter = PartitionedParameters.Gather(groups.ModelParallel, partition, model, local) } : s)
            .ToList();
        string? path = null;
        // Pruning masks are the same on every data replica; replica 0's stages assemble them like the moments.
        var masks = engine.Engine.Compression is { } compression && groups.Coordinates.DataRank == 0
            ? CompressionMaskCheckpoint.GatherStages(groups.ModelParallel, partition, model, engine.Stage.Layout, compression)
            : null;
        var scores = engine.Engine.Compression is { Config.LearnsMasks: true } learning && groups.Coordinates.DataRank == 0
            ? CompressionScoreCheckpoint.GatherStages(groups.ModelParallel, partition, model, engine.Stage.Layout, learning.Config, learning.Learned)
            : null;
        if (groups.Coordinates.DataRank == 0)
        {
            // Replica 0's stages stream their parameters to world rank 0 one at a time, straight into the files.
            var mp = groups.ModelParallel;
            if (groups.World.Rank == 0)
            {
                path = store.WriteFull(model, oneBitState, engine.Engine, sampler, tokenizer, settings, (modelFile, optimizerFile) =>
                {
                    PartitionedParameters.StreamToFirst(mp, partition, model, master, (slot, values) => modelFile.Write(slot.Name, values));
                    PartitionedParameters.StreamToFirst(mp, partition, model, expAvg, (slot, values) => optimizerFile.Write(slot.Name + ".exp_avg", values));
                    PartitionedParameters.StreamToFirst(mp, partition, model, expAvgSq, (slot, values) => optimizerFile.Write(slot.Name + ".exp_avg_sq", values));
                }, masks, scores);
            }
            else
            {
                foreach (var local in new[] { master, expAvg, expAvgSq }) PartitionedParameters.StreamToFirst(mp, partition, model, local, write: null);
            }
        }
        // Ranks leave the save together, so the next step's timings (blocked in receives) measure training, not rank 0's write.
        groups.World.Barrier();
        return path;
    }

    /// <summary>Restores a checkpoint (one-process or pipelined, any rank count) into this rank's stage engine and the sampler.</summary>
    public static void Load(string checkpoint, PipelineEngine engine, ParameterLayout model, BatchSampler sampler, TextWriter? log = null)
    {
        var stage = engine.Stage.Stage;
        int tensorRank = engine.Groups.Coordinates.TensorRank;
        long local = stage.Layout.TotalElements;
        var localMaster = new float[local];
        var localExpAvg = new float[local];
        var localExpAvgSq = new float[local];
        long adamStep;
        using (var state = CheckpointStateReader.Open(checkpoint, model))
        {
            // Parameter by parameter: a stage reads what it holds, never the whole model's state.
            foreach (var (tensor, into) in new[] { (CheckpointStateTensor.Master, localMaster), (CheckpointStateTensor.ExpAvg, localExpAvg), (CheckpointStateTensor.ExpAvgSq, localExpAvgSq) })
                PartitionedParameters.Extract(model, (slot, values) => state.Read(tensor, slot.Offset, values), stage, tensorRank, into);
            adamStep = state.AdamStep;
        }
        // Masks first: importing the weights recompresses the stage's working copy, which would otherwise take masks anew.
        if (engine.Engine.Compression is { } compression)
        {
            CompressionMaskCheckpoint.Restore(checkpoint, compression, stage.Layout, log);
            CompressionScoreCheckpoint.Restore(checkpoint, compression.Learned, log);
        }
        engine.Engine.ImportFullState(localMaster, localExpAvg, localExpAvgSq, adamStep);
        if (engine.Engine.OneBit is { } oneBit)
        {
            var stageState = oneBit.CheckpointState;
            var full = OneBitStateCheckpoint.Allocate(stageState, model.TotalElements);
            if (OneBitStateCheckpoint.Restore(checkpoint, model, full, oneBit, log))
            {
                for (int i = 0; i < stageState.Count; i++)
                {
                    if (stageState[i].PerParameter is { } array) PartitionedParameters.Extract(model, full[i].PerParameter, stage, tensorRank, array);
                    else full[i].Values!.CopyTo(stageState[i].Values!, 0);
                }
            }
        }
        TrainingCheckpoint.RestoreProgress(checkpoint, engine.Engine, sampler, log);
    }
}
