using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator.Planning;

/// <summary>Everything the emitter needs for one model: where to put the code, the traced graph and the plans.</summary>
internal sealed record ProgramPlan(
    string Namespace,
    string ClassName,
    EquatableArray<string> ContainingTypes,
    IrGraph Graph,
    ParameterLayoutPlan Layout,
    EquatableArray<BackwardStep> Backward,
    CheckpointPlan Checkpoints,
    EquatableArray<long> GradientsReadyFrom,
    GradientPoolPlan GradientPool,
    ParameterResidencyPlan Residency,
    ActivationPlan Activations,
    EpiloguePlan Epilogues,
    GradientAliasPlan GradientAliases,
    string Report)
{
    /// <summary>The per-stage programs when the model is planned for Pipeline or Tensor above 1; null otherwise.</summary>
    public PartitionPlan? Partition { get; init; }

    /// <summary>The memory estimate of every stage at the [Model] planning assumptions (<see cref="MemoryPrecision.Mixed16"/>).</summary>
    public EquatableArray<StageMemory> AssumedMemory { get; init; } = EquatableArray<StageMemory>.Empty;

    /// <summary>Whether the forward's loss op may write its gradient too (<see cref="LossGradientFusionPlanner"/>).</summary>
    public bool FusesLossGradient { get; init; }

    /// <summary>What progressive layer drop may skip (<c>[LayerDrop]</c> elements); empty without the attribute.</summary>
    public LayerDropPlan LayerDrop { get; init; } = LayerDropPlan.None(0);

    /// <summary>Where random-LTD runs layers on kept tokens (<c>[TokenDrop]</c> elements); empty without the attribute.</summary>
    public TokenDropPlan TokenDrop { get; init; } = TokenDropPlan.None(0);

    /// <summary>Per slot, the <c>[LayerDrop]</c> element whose skip leaves it unread (ZeRO-3 skips its gathers), or −1.</summary>
    public EquatableArray<int> GathersSkippedWith { get; init; } = EquatableArray<int>.Empty;

    /// <summary>The estimate for ZeRO 0–3 at both precisions, emitted as <c>MemoryEstimate</c> for tests to hold against the runtime.</summary>
    public EquatableArray<MemoryEstimateRow> MemoryEstimates { get; init; } = EquatableArray<MemoryEstimateRow>.Empty;
}

internal static class ProgramPlanner
{
    /// <summary>Traces and plans a parsed model; null when tracing found an error (the analyzer reports it).</summary>
    public static ProgramPlan? Plan(ModelSpec model)
    {
        var trace = Tracer.Trace(model);
        if (trace.Graph is null) return null;

        var graph = trace.Graph;
        var pipeline = PipelinePlanner.Plan(model, graph);
        if (ParallelismValidator.Validate(model, pipeline, null).Count > 0) return null; // the analyzer reports SW0010-SW0013, SW0018
        var partition = PlanPartition(model, graph, pipeline);
        if (partition is { IsValid: false }) return null; // the analyzer reports SW0017 and SW0019 (and SW0020 on a stage)
        var plan = Plan(model, graph, pipeline, partition);
        return plan.LayerDrop.Problems.Count > 0 || plan.TokenDrop.Problems.Count > 0 ? null : plan; // the analyzer reports SW0020, SW0021
    }

    /// <summary>The per-stage programs of a model planned for Pipeline or Tensor above 1; null for an unpartitioned one.</summary>
    public static PartitionPlan? PlanPartition(ModelSpec model, IrGraph graph, PipelinePlan pipeline)
        => model.Pipeline > 1 || model.Tensor > 1 ? PartitionPlanner.Plan(model, graph, pipeline) : null;

    /// <summary>
    /// Plans a traced model whose parallel degrees and partition are valid, from the plans already made (the analyzer
    /// has them from validating, so nothing is traced or cut twice).
    /// </summary>
    public static ProgramPlan Plan(ModelSpec model, IrGraph graph, PipelinePlan pipeline, PartitionPlan? partition)
    {
        var whole = PlanProgram(model, graph, report: "");
        var memory = MemoryEstimator.EstimateStages(graph, pipeline, whole.Activations, whole.GradientPool.PoolElements, whole.Residency.PoolElements,
            model.Assumptions, MemoryPrecision.Mixed16, model.Assumptions.ZeroStage, partition);
        var report = PlanReport.Write(model.ClassName, graph, whole.Layout, whole.Activations, whole.Checkpoints, pipeline, model, memory, whole.Epilogues, whole.GradientAliases,
            whole.FusesLossGradient, whole.LayerDrop, whole.TokenDrop, partition);
        return whole with
        {
            Report = report,
            Partition = partition,
            AssumedMemory = memory.ToEquatableArray(),
            MemoryEstimates = MemoryEstimator.EstimateAll(graph, pipeline, whole.Activations, whole.GradientPool.PoolElements, whole.Residency.PoolElements, model.Assumptions, partition),
        };
    }

    /// <summary>Plans one straight-line program (the whole model, or one pipeline stage): layout, backward, buffers, pools.</summary>
    /// <param name="tensorDegree">The tensor ranks a stage program runs on (1 for the whole model).</param>
    public static ProgramPlan PlanProgram(ModelSpec model, IrGraph graph, string report, int tensorDegree = 1)
    {
        var layout = ParameterLayoutPlanner.Plan(graph);
        var backward = BackwardPlanner.Plan(graph);
        var checkpoints = CheckpointPlanner.Plan(graph, model.Root, backward, tensorDegree);
        var epilogues = EpilogueFusionPlanner.Plan(graph, backward, checkpoints);
        var layerDrop = LayerDropPlanner.Plan(graph, model.Root);
        var tokenDrop = TokenDropPlanner.Plan(graph, model.Root);
        var aliases = GradientAliasPlanner.Plan(graph, backward, checkpoints, epilogues, layerDrop);
        var activations = ActivationPlanner.Plan(graph, backward, checkpoints, epilogues, aliases);
        var ready = GradientReadinessPlanner.Plan(layout, backward, graph);
        var pool = GradientPoolPlanner.Plan(layout, backward, graph);
        var residency = ParameterResidencyPlanner.Plan(graph, layout, checkpoints);
        return new ProgramPlan(model.Namespace, model.ClassName, model.ContainingTypes, graph, layout, backward, checkpoints, ready, pool, residency, activations, epilogues, aliases, report)
        {
            FusesLossGradient = LossGradientFusionPlanner.Plan(graph, backward, checkpoints),
            LayerDrop = layerDrop,
            TokenDrop = tokenDrop,
            GathersSkippedWith = LayerDropResidencyPlanner.Plan(graph, layout, layerDrop, epilogues),
        };
    }
}
