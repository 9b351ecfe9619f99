using System.Linq;
using System.IO;
using Shardwise.Data;
using Shardwise.Plans;
using Shardwise.Training.Pipeline;

namespace Shardwise.Training.Cli;

/// <summary>
/// Checkpoints of a pipelined / tensor-parallel run in exactly the one-process format (<see cref="TrainingCheckpoint"/>),
/// so either kind of run resumes the other. Saving gathers the full fp32 state — master weights, both Adam moments —
/// in the model's full <see cref="ParameterLayout"/> (each engine first assembles its stage's local state from its
/// ZeRO data group, then the model-parallel group of each replica assembles the model); world rank 0 (replica 0)
/// writes it with the same atomic store. Loading reads, parameter by parameter, only the parameters each stage holds and
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
        float[] fullMaster = PartitionedParameters.Gather(groups.ModelParallel, partition, model, master);
        float[] fullExpAvg = PartitionedParameters.Gather(groups.ModelParallel, partition, model, expAvg);
        float[] fullExpAvgSq = PartitionedParameters.Gather(groups.ModelParallel, partition, model, expAvgSq);
        // A 1-bit optimizer's per-parameter state is gathered like the moments; its vectors are the same on every stage.
        var oneBitState = engine.Engine.OneBit?.CheckpointState
            .Select(s => s.PerParameter is { } local ? s with { PerParameter = PartitionedParameters.Gather(groups.ModelParallel, partition, model, local) } : s)
            .ToList();
        string? path = groups.World.Rank == 0
            ? store.SaveFull(model, fullMaster, fullExpAvg, fullExpAvgSq, oneBitState, engine.Engine, sampler, tokenizer, settings)
            : null;
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
