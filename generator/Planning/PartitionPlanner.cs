using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>A parameter held by several pipeline stages (a tied embedding and output head): its local slot and the holders.</summary>
internal sealed record TiedSlot(int Slot, string Name, EquatableArray<int> Stages);

/// <summary>
/// One stage's complete program (planned like the whole model's: layout, backward, activation plan, pools) and the
/// data the runtime needs to place it: how each local parameter is split and whether this stage is its first holder.
/// </summary>
internal sealed record StageProgram(
    StageGraph Stage,
    ProgramPlan Program,
    EquatableArray<ParameterSplit> Splits,
    EquatableArray<bool> FirstHolder,
    EquatableArray<TiedSlot> Tied);

/// <summary>The static partition: p stage programs, each for one of t tensor ranks, and what makes it unrunnable.</summary>
internal sealed record PartitionPlan(
    int Pipeline,
    int Tensor,
    EquatableArray<StageProgram> Stages,
    EquatableArray<SplitProblem> SplitProblems,
    EquatableArray<string> StageProblems)
{
    public bool IsValid => SplitProblems.Count == 0 && StageProblems.Count == 0 && LayerDropProblems.Count == 0;

    /// <summary>
    /// <c>[LayerDrop]</c> elements that the whole model's check passed but a stage's program cannot skip (a split
    /// element, say); the analyzer reports them as SW0020 with the stage.
    /// </summary>
    public EquatableArray<LayerDropProblem> LayerDropProblems => Stages
        .SelectMany(s => s.Program.LayerDrop.Problems.Select(p => p with { Reason = p.Reason + " on pipeline stage " + s.Stage.Index.ToString(System.Globalization.CultureInfo.InvariantCulture) }))
        .ToEquatableArray();
}

/// <summary>
/// Plans a model with <c>[Model(Pipeline = p, Tensor = t)]</c>: applies the tensor split, cuts the stage programs
/// along the pipeline plan, and plans each like a model of its own, so every stage's program is as static as the
/// unpartitioned one (planned buffers, no allocation per step).
/// </summary>
internal static class PartitionPlanner
{
    public static PartitionPlan Plan(ModelSpec model, IrGraph graph, PipelinePlan pipeline)
    {
        var split = TensorSplitPlanner.Plan(model.Root, graph, model.Tensor);
        int stages = model.Pipeline < 1 ? 1 : model.Pipeline;
        var cut = Enumerable.Range(0, stages).Select(s => StagePlanner.Extract(split, pipeline, s)).ToList();

        var holders = new Dictionary<int, List<int>>();
        foreach (var stage in cut)
        {
            foreach (int id in stage.ModelParameters)
            {
                if (!holders.TryGetValue(id, out var list)) holders[id] = list = new List<int>();
                list.Add(stage.Index);
            }
        }

        var programs = new List<StageProgram>();
        foreach (var stage in cut)
        {
            var program = ProgramPlanner.PlanProgram(model, stage.Graph, report: "", model.Tensor);
            var splits = stage.ModelParameters.Select(id => split.Splits[id]).ToEquatableArray();
            var first = stage.ModelParameters.Select(id => holders[id][0] == stage.Index).ToEquatableArray();
            var tied = stage.ModelParameters
                .Select((id, slot) => (id, slot))
                .Where(p => holders[p.id].Count > 1)
                .Select(p => new TiedSlot(p.slot, graph.Parameters[p.id].Name, holders[p.id].ToEquatableArray()))
                .ToEquatableArray();
            programs.Add(new StageProgram(stage, program, splits, first, tied));
        }
        return new PartitionPlan(stages, split.Degree, programs.ToEquatableArray(), split.Problems,
            cut.SelectMany(s => s.Problems).ToEquatableArray());
    }
}
