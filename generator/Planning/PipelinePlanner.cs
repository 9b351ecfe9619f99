using System;
using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// A unit the pipeline cut never splits: consecutive ops of one top-level layer (<c>tokens</c>, <c>blocks.3</c>,
/// <c>finalNorm</c>), or the loss. <see cref="Parameters"/> are the ids of every parameter its ops use.
/// </summary>
internal sealed record PipelineLayer(
    string Name,
    int FirstOp,
    int OpCount,
    long Flops,
    long NewParameterElements,
    long ActivationBytes,
    EquatableArray<int> Parameters);

/// <summary>
/// One pipeline stage: layers [<see cref="FirstLayer"/>, FirstLayer + <see cref="LayerCount"/>). Parameters count
/// every tensor the stage holds (a tied one on each stage that uses it); FLOPs and activation bytes are per sample.
/// <see cref="InFlight"/> is how many micro-batches 1F1B keeps alive on the stage (p − stage).
/// </summary>
internal sealed record PipelineStage(int Index, int FirstLayer, int LayerCount, long Flops, long ParameterElements, long ActivationBytes, int InFlight)
{
    /// <summary>Elements per sample of the values this stage sends to the next (its boundary activation); 0 on the last stage.</summary>
    public long SendElementsPerSample { get; init; }
}

/// <summary>A parameter used by layers on several stages (a tied embedding and output head): each holds a copy.</summary>
internal sealed record TiedParameter(string Name, long Elements, EquatableArray<int> Stages);

/// <summary>
/// The static pipeline cut. <see cref="StagePlans"/> is empty when the model cannot be cut into <see cref="Stages"/>
/// stages (fewer layers than stages, or a degree below 1); <see cref="TiedParameters"/> name the parameters held by
/// several stages, whose gradients 1F1B's ReduceTiedGradients sums. A cut pinned by <c>StageStarts</c> that names no
/// valid cut leaves the plan uncut, with <see cref="PinnedCutProblem"/> saying why.
/// </summary>
internal sealed record PipelinePlan(
    int Stages,
    EquatableArray<PipelineLayer> Layers,
    EquatableArray<PipelineStage> StagePlans,
    EquatableArray<string> TiedParameters)
{
    public bool IsCut => StagePlans.Count == Stages && Stages >= 1;

    /// <summary>The cut was pinned by hand (<c>StageStarts</c>) rather than chosen by the cost model.</summary>
    public bool IsPinned { get; init; }

    /// <summary>Why the pinned stage starts describe no cut, completing "StageStarts ..."; empty when they do (or none are pinned).</summary>
    public string PinnedCutProblem { get; init; } = "";

    /// <summary>The parameters held by several stages, with their sizes and stages.</summary>
    public EquatableArray<TiedParameter> Tied { get; init; } = EquatableArray<TiedParameter>.Empty;

    public long TotalFlops => Layers.Sum(l => l.Flops);

    /// <summary>The micro-batch count the report quotes the bubble for when none is assumed: 4p, where 1F1B's bubble is about 20% or less.</summary>
    public static int ReportMicroBatches(int stages) => 4 * stages;

    /// <summary>1F1B's idle fraction of a step, (p − 1)/(m + p − 1).</summary>
    public static double Bubble(int stages, int microBatches) => (stages - 1) / (double)(microBatches + stages - 1);
}

/// <summary>
/// Cuts a traced model into pipeline stages. Ops are grouped into layers by their top-level layer path; ops of the
/// model's own forward (positions, the embedding sum) join the layer before them, and the loss is a layer of its own.
/// The cut is an exact dynamic program over contiguous partitions: first the smallest possible FLOPs of the slowest
/// stage, then, among cuts achieving it, the smallest peak memory (16 bytes per parameter, ZeRO's mixed-precision
/// Adam, plus the activations of the p − s micro-batches 1F1B keeps in flight on stage s). When it can, it gives every
/// stage at least one parameter (DeepSpeed issue #5078: a stage without parameters crashes optimizer setup).
/// <c>[Model(StageStarts = ...)]</c> replaces the search by the cut it names.
/// </summary>
internal static class PipelinePlanner
{
    public const string LossLayer = "loss";
    private const int ModelStateBytesPerParameter = 16;

    public static PipelinePlan Plan(ModelSpec model, IrGraph graph)
        => Plan(model.Pipeline, model.Root, graph, PipelineCostModel.Estimate(graph), model.Assumptions.StageStarts);

    public static PipelinePlan Plan(int stages, LayerNode root, IrGraph graph, EquatableArray<OpCost> costs)
        => Plan(stages, root, graph, costs, EquatableArray<string>.Empty);

    /// <param name="stageStarts">The first layer of every stage after the first, pinned by hand; empty: search the cut.</param>
    public static PipelinePlan Plan(int stages, LayerNode root, IrGraph graph, EquatableArray<OpCost> costs, EquatableArray<string> stageStarts)
    {
        var layers = GroupLayers(root, graph, costs);
        var uncut = new PipelinePlan(stages, layers.ToEquatableArray(), EquatableArray<PipelineStage>.Empty, EquatableArray<string>.Empty);
        if (stages < 1 || stages > layers.Count) return uncut;

        int[] cuts;
        bool pinned = stageStarts.Count > 0;
        if (pinned)
        {
            var pin = PinnedCut.Resolve(layers, stageStarts, stages);
            if (pin.Cuts is null) return uncut with { PinnedCutProblem = pin.Problem };
            cuts = pin.Cuts;
        }
        else
        {
            cuts = Cut(stages, layers, graph);
        }
        var plans = new List<PipelineStage>();
        var holders = new SortedDictionary<int, List<int>>();
        for (int s = 0; s < stages; s++)
        {
            int from = cuts[s], to = cuts[s + 1];
            var held = new SortedSet<int>();
            for (int l = from; l < to; l++)
            {
                foreach (int id in layers[l].Parameters) held.Add(id);
            }
            foreach (int id in held)
            {
                if (!holders.TryGetValue(id, out var list)) holders[id] = list = new List<int>();
                list.Add(s);
            }
            plans.Add(new PipelineStage(s, from, to - from,
                Sum(layers, from, to, l => l.Flops),
                held.Sum(id => graph.Parameters[id].Elements),
                Sum(layers, from, to, l => l.ActivationBytes),
                stages - s)
            {
                SendElementsPerSample = s == stages - 1 ? 0 : CrossingElements(graph, layers[to].FirstOp),
            });
        }

        var tied = holders.Where(pair => pair.Value.Count > 1)
            .Select(pair => new TiedParameter(graph.Parameters[pair.Key].Name, graph.Parameters[pair.Key].Elements, pair.Value.ToEquatableArray()))
            .ToList();
        return new PipelinePlan(stages, layers.ToEquatableArray(), plans.ToEquatableArray(),
            tied.Select(t => t.Name + " (stages " + string.Join(", ", t.Stages) + ")").ToEquatableArray())
        {
            IsPinned = pinned,
            Tied = tied.ToEquatableArray(),
        };
    }

    /// <summary>
    /// Elements per sample of the values made before op <paramref name="boundary"/> and read at or after it: what a
    /// stage ending there sends forward (and receives the gradient of, for real values). Model inputs are not sent:
    /// every stage reads its own from the data loader.
    /// </summary>
    private static long CrossingElements(IrGraph graph, int boundary)
    {
        var madeBefore = new HashSet<int>();
        for (int k = 0; k < boundary; k++)
        {
            foreach (int value in graph.Ops[k].Outputs) madeBefore.Add(value);
        }
        var crossing = new HashSet<int>();
        for (int k = boundary; k < graph.Ops.Count; k++)
        {
            foreach (int value in graph.Ops[k].Inputs)
            {
                if (madeBefore.Contains(value)) crossing.Add(value);
            }
        }
        return crossing.Sum(value => graph.Values[value].ElementsPerSample);
    }

    /// <summary>Consecutive ops with the same top-level layer form one layer; see the class summary for the model's own ops.</summary>
    public static List<PipelineLayer> GroupLayers(LayerNode root, IrGraph graph, EquatableArray<OpCost> costs)
    {
        var groups = new List<(string Key, int First, int Count)>();
        for (int k = 0; k < graph.Ops.Count; k++)
        {
            var op = graph.Ops[k];
            string key = op.Kind == OpKind.CrossEntropy ? LossLayer : TopLevel(root, op.Layer);
            bool joinPrevious = groups.Count > 0 && (key.Length == 0 || key == groups[groups.Count - 1].Key);
            if (joinPrevious)
            {
                var last = groups[groups.Count - 1];
                groups[groups.Count - 1] = (last.Key, last.First, last.Count + 1);
            }
            else
            {
                groups.Add((key.Length == 0 ? "(model)" : key, k, 1));
            }
        }

        var used = new HashSet<string>();
        var layers = new List<PipelineLayer>();
        foreach (var (key, first, count) in groups)
        {
            // A layer that runs again later (a tied output head reusing the embedding) shares its parameters.
            string name = used.Add(key) ? key : key + " (tied)";
            var parameters = new SortedSet<int>();
            long flops = 0, newParameters = 0, bytes = 0;
            for (int k = first; k < first + count; k++)
            {
                foreach (int id in graph.Ops[k].Parameters) parameters.Add(id);
                flops += costs[k].Flops;
                newParameters += costs[k].NewParameterElements;
                bytes += costs[k].ActivationBytes;
            }
            layers.Add(new PipelineLayer(name, first, count, flops, newParameters, bytes, parameters.ToEquatableArray()));
        }
        return layers;
    }

    /// <summary>The first path segment, or the first two when the first names a layer array (<c>blocks.3</c>).</summary>
    private static string TopLevel(LayerNode root, string path)
    {
        if (path.Length == 0) return "";
        var segments = path.Split('.');
        var node = root.Child(segments[0]);
        return node is { Kind: LayerKind.Array } && segments.Length > 1 ? segments[0] + "." + segments[1] : segments[0];
    }

    /// <summary>Stage boundaries: stage s holds layers [cuts[s], cuts[s + 1]).</summary>
    private static int[] Cut(int stages, List<PipelineLayer> layers, IrGraph graph)
    {
        int n = layers.Count;
        var flops = new long[n + 1];
        var withParameters = new int[n + 1];
        for (int l = 0; l < n; l++)
        {
            flops[l + 1] = flops[l] + layers[l].Flops;
            withParameters[l + 1] = withParameters[l] + (layers[l].Parameters.Count > 0 ? 1 : 0);
        }

        // Parameter elements and activation bytes of every contiguous range [i, j).
        var parameters = new long[n + 1, n + 1];
        var activations = new long[n + 1, n + 1];
        for (int i = 0; i < n; i++)
        {
            var held = new HashSet<int>();
            long elements = 0, bytes = 0;
            for (int j = i + 1; j <= n; j++)
            {
                foreach (int id in layers[j - 1].Parameters)
                {
                    if (held.Add(id)) elements += graph.Parameters[id].Elements;
                }
                bytes += layers[j - 1].ActivationBytes;
                parameters[i, j] = elements;
                activations[i, j] = bytes;
            }
        }

        foreach (bool everyStageHoldsParameters in new[] { true, false })
        {
            bool Allowed(int i, int j) => !everyStageHoldsParameters || withParameters[j] - withParameters[i] > 0;

            // 1. The smallest FLOPs of the slowest stage.
            long bound = Solve(stages, n, (s, i, j) => Allowed(i, j) ? flops[j] - flops[i] : long.MaxValue, out _);
            if (bound == long.MaxValue) continue;

            // 2. Among cuts whose every stage is within that bound, the smallest peak memory.
            long Memory(int s, int i, int j) => !Allowed(i, j) || flops[j] - flops[i] > bound
                ? long.MaxValue
                : ModelStateBytesPerParameter * parameters[i, j] + (long)(stages - s) * activations[i, j];
            Solve(stages, n, Memory, out var cuts);
            return cuts;
        }
        throw new InvalidOperationException("no contiguous cut of " + n + " layers into " + stages + " stages");
    }

    /// <summary>
    /// min over cuts 0 = c0 &lt; c1 &lt; … &lt; cp = n of max over s of cost(s, c_s, c_s+1); long.MaxValue marks a forbidden
    /// stage. Ties keep the earliest boundary, so the result is deterministic.
    /// </summary>
    private static long Solve(int stages, int n, Func<int, int, int, long> cost, out int[] cuts)
    {
        var best = new long[stages + 1, n + 1];
        var choice = new int[stages + 1, n + 1];
        for (int k = 0; k <= stages; k++)
        {
            for (int j = 0; j <= n; j++) best[k, j] = long.MaxValue;
        }
        best[0, 0] = 0;
        for (int k = 1; k <= stages; k++)
        {
            for (int j = k; j <= n; j++)
            {
                for (int i = k - 1; i < j; i++)
                {
                    if (best[k - 1, i] == long.MaxValue) continue;
                    long stage = cost(k - 1, i, j);
                    if (stage == long.MaxValue) continue;
                    long worst = Math.Max(best[k - 1, i], stage);
                    if (worst < best[k, j])
                    {
                        best[k, j] = worst;
                        choice[k, j] = i;
                    }
                }
            }
        }

        cuts = new int[stages + 1];
        cuts[stages] = n;
        if (best[stages, n] == long.MaxValue) return long.MaxValue;
        for (int k = stages; k > 0; k--) cuts[k - 1] = choice[k, cuts[k]];
        return best[stages, n];
    }

    private static long Sum(List<PipelineLayer> layers, int from, int to, Func<PipelineLayer, long> value)
    {
        long total = 0;
        for (int l = from; l < to; l++) total += value(layers[l]);
        return total;
    }
}
