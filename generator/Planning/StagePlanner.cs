using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// One pipeline stage's program for one tensor rank, cut out of the tensor-split graph. <see cref="Graph"/> is a
/// complete program: its parameters are renumbered from 0 (<see cref="ModelParameters"/> maps each back to the model's
/// parameter id), its inputs are the model's token inputs it reads plus <see cref="Received"/>, the activation the
/// previous stage sends (-1 on the first stage), and its output is the loss (last stage) or <see cref="Sent"/>.
/// </summary>
internal sealed record StageGraph(
    int Index,
    IrGraph Graph,
    EquatableArray<int> ModelParameters,
    int Received,
    int Sent,
    string Layers,
    EquatableArray<string> Problems);

/// <summary>
/// Cuts stage programs out of a traced model along the pipeline plan. A stage takes the model ops of its layers
/// (with the tensor split's f/g collectives); a value made on an earlier stage becomes an input: a model input is
/// loaded again (every stage gets the micro-batch's token ids and targets), positions are recomputed (free), and one
/// real-valued activation is received. Shardwise sends exactly one activation across each cut, as GPT-style models
/// need (the residual stream); a cut that would pass more is a problem the validator reports (SW0019).
/// </summary>
internal static class StagePlanner
{
    public const string ReceivedInput = "received";

    public static StageGraph Extract(TensorSplitPlan split, PipelinePlan pipeline, int stage)
    {
        var graph = split.Graph;
        int stages = pipeline.Stages < 1 ? 1 : pipeline.Stages;
        var (from, to) = ModelOpRange(pipeline, stage, graph, split);
        var problems = new List<string>();

        var ops = new List<IrOp>();
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            if (split.Origins[k] >= from && split.Origins[k] < to) ops.Add(graph.Ops[k]);
        }

        var producer = graph.Producers();

        var produced = new HashSet<int>(ops.SelectMany(op => op.Outputs));
        var modelInputs = new HashSet<int>(graph.Inputs.Select(i => i.Value));
        var tokenInputs = new SortedSet<int>();
        var received = new List<int>();
        var recomputed = new List<IrOp>();
        foreach (int value in ops.SelectMany(op => op.Inputs).Distinct().ToList())
        {
            if (produced.Contains(value)) continue;
            if (modelInputs.Contains(value))
            {
                tokenInputs.Add(value);
            }
            else if (producer[value] is int k and >= 0 && graph.Ops[k].Kind == OpKind.Positions)
            {
                recomputed.Add(graph.Ops[k]);
                tokenInputs.Add(graph.Ops[k].Inputs[0]);
            }
            else
            {
                received.Add(value);
            }
        }
        ops.InsertRange(0, recomputed);

        bool last = stage == stages - 1;
        var sent = new List<int>();
        if (!last)
        {
            var later = new HashSet<int>();
            var earlier = new HashSet<int>();
            for (int k = 0; k < graph.Ops.Count; k++)
            {
                if (split.Origins[k] >= to) later.UnionWith(graph.Ops[k].Inputs);
                if (split.Origins[k] < from) earlier.UnionWith(graph.Ops[k].Outputs);
            }
            bool Real(int v) => graph.Values[v].Kind == ValueKind.Real;
            // Everything made here or before and used after must go on, including what this stage only passes through.
            sent.AddRange(produced.Union(earlier).Where(v => later.Contains(v) && Real(v)).OrderBy(v => v));
            received.AddRange(earlier.Where(v => later.Contains(v) && Real(v) && !received.Contains(v)).OrderBy(v => v));
        }

        if (received.Count > 1)
            problems.Add($"stage {stage} would receive {received.Count} tensors ({string.Join(", ", received.Select(v => graph.Values[v].Name))})");
        if (!last && sent.Count != 1)
            problems.Add($"stage {stage} would send {sent.Count} tensors ({string.Join(", ", sent.Select(v => graph.Values[v].Name))})");

        // Parameters in first-use order, renumbered from 0.
        var modelParameters = new List<int>();
        var local = new Dictionary<int, int>();
        foreach (int id in ops.SelectMany(op => op.Parameters))
        {
            if (local.ContainsKey(id)) continue;
            local[id] = modelParameters.Count;
            modelParameters.Add(id);
        }
        var parameters = modelParameters.Select((id, i) => graph.Parameters[id] with { Id = i }).ToEquatableArray();
        var remapped = ops.Select(op => op with { Parameters = op.Parameters.Select(id => local[id]).ToEquatableArray() }).ToEquatableArray();

        var inputs = graph.Inputs.Where(i => tokenInputs.Contains(i.Value)).ToList();
        int receivedValue = received.Count > 0 ? received[0] : -1;
        if (receivedValue >= 0) inputs.Add(new IrInput(ReceivedInput, receivedValue));
        int sentValue = sent.Count > 0 ? sent[0] : -1;

        var stageGraph = graph with
        {
            Ops = remapped,
            Parameters = parameters,
            Inputs = inputs.ToEquatableArray(),
            Output = last ? graph.Output : sentValue,
            OutputIsLoss = last && graph.OutputIsLoss,
        };
        return new StageGraph(stage, stageGraph, modelParameters.ToEquatableArray(), receivedValue, last ? -1 : sentValue,
            LayerNames(pipeline, stage), problems.ToEquatableArray());
    }

    /// <summary>The model ops [from, to) of a stage; one stage holds every op.</summary>
    private static (int From, int To) ModelOpRange(PipelinePlan pipeline, int stage, IrGraph graph, TensorSplitPlan split)
    {
        if (pipeline.Stages <= 1 || !pipeline.IsCut) return (0, int.MaxValue);
        var plan = pipeline.StagePlans[stage];
        var first = pipeline.Layers[plan.FirstLayer];
        var lastLayer = pipeline.Layers[plan.FirstLayer + plan.LayerCount - 1];
        return (first.FirstOp, lastLayer.FirstOp + lastLayer.OpCount);
    }

    private static string LayerNames(PipelinePlan pipeline, int stage)
    {
        if (pipeline.Stages <= 1 || !pipeline.IsCut) return string.Join(", ", pipeline.Layers.Select(l => l.Name));
        var plan = pipeline.StagePlans[stage];
        return string.Join(", ", pipeline.Layers.Skip(plan.FirstLayer).Take(plan.LayerCount).Select(l => l.Name));
    }
}
