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
    string Report);

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
        var checkpoints = CheckpointPlanner.Plan(graph, model.Root, backward);
        var activations = ActivationPlanner.Plan(graph, backward, checkpoints);
        var ready = GradientReadinessPlanner.Plan(layout, backward, graph);
        var pool = GradientPoolPlanner.Plan(layout, backward, graph);
        var residency = ParameterResidencyPlanner.Plan(graph, layout, checkpoints);
        var pipeline = PipelinePlanner.Plan(model, graph);
        if (ParallelismValidator.Validate(model, pipeline, null).Count > 0) return null; // the analyzer reports SW0010-SW0013
        var report = PlanReport.Write(model.ClassName, graph, layout, activations, checkpoints, pipeline);
        return new ProgramPlan(model.Namespace, model.ClassName, model.ContainingTypes, graph, layout, backward, checkpoints, ready, pool, residency, activations, report);
    }
}
