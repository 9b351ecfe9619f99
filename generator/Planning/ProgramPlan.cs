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
    EquatableArray<long> GradientsReadyFrom,
    GradientPoolPlan GradientPool,
    ParameterResidencyPlan Residency,
    ActivationPlan Activations,
    string Report)
{
    /// <summary>The memory estimate of every stage at the [Model] planning assumptions (<see cref="MemoryPrecision.Mixed16"/>).</summary>
    public EquatableArray<StageMemory> AssumedMemory { get; init; } = EquatableArray<StageMemory>.Empty;

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
        var layout = ParameterLayoutPlanner.Plan(graph);
        var backward = BackwardPlanner.Plan(graph);
        var activations = ActivationPlanner.Plan(graph, backward);
        var ready = GradientReadinessPlanner.Plan(layout, backward, graph);
        var pool = GradientPoolPlanner.Plan(layout, backward, graph);
        var residency = ParameterResidencyPlanner.Plan(graph, layout, backward);
        var pipeline = PipelinePlanner.Plan(model, graph);
        if (ParallelismValidator.Validate(model, pipeline, null).Count > 0) return null; // the analyzer reports SW0010-SW0013, SW0018
        var memory = MemoryEstimator.EstimateStages(graph, pipeline, activations, pool.PoolElements, residency.PoolElements,
            model.Assumptions, MemoryPrecision.Mixed16, model.Assumptions.ZeroStage);
        var report = PlanReport.Write(model.ClassName, graph, layout, activations, pipeline, model, memory);
        return new ProgramPlan(model.Namespace, model.ClassName, model.ContainingTypes, graph, layout, backward, ready, pool, residency, activations, report)
        {
            AssumedMemory = memory.ToEquatableArray(),
            MemoryEstimates = MemoryEstimator.EstimateAll(graph, pipeline, activations, pool.PoolElements, residency.PoolElements, model.Assumptions),
        };
    }
}
