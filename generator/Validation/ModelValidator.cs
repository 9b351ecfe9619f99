using System;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;
using Shardwise.Generator.Parsing;

namespace Shardwise.Generator.Validation;

/// <summary>
/// The one validation path: the analyzer reports what this returns, and the generator emits code only for models
/// for which it returns nothing. Unexpected failures become a diagnostic, never an exception in the build.
/// </summary>
internal static class ModelValidator
{
    public static EquatableArray<DiagnosticInfo> Validate(INamedTypeSymbol model, Compilation compilation, CancellationToken cancellationToken)
    {
        try
        {
            var parse = ModelParser.Parse(model, compilation, cancellationToken);
            if (parse.Model is null) return parse.Diagnostics;
            var trace = Tracer.Trace(parse.Model);
            if (trace.Graph is null) return trace.Diagnostics;
            var attribute = Symbols.FindAttribute(model, KnownNames.ModelAttribute)?.ApplicationSyntaxReference?.GetSyntax(cancellationToken);
            var location = LocationInfo.From(attribute) ?? LocationInfo.From(model.Locations.IsEmpty ? null : model.Locations[0]);
            var layerDrop = Planning.LayerDropPlanner.Plan(trace.Graph, parse.Model.Root);
            if (layerDrop.Problems.Count > 0) return LayerDropDiagnostics(layerDrop.Problems, model.Name, location);
            var tokenDrop = Planning.TokenDropPlanner.Plan(trace.Graph, parse.Model.Root);
            if (tokenDrop.Problems.Count > 0)
                return tokenDrop.Problems.Select(p => DiagnosticInfo.Create(DiagnosticDescriptors.LayerCannotDropTokens, p.Location ?? location, p.Layer, model.Name, p.Reason))
                    .ToEquatableArray();
            var pipeline = Planning.PipelinePlanner.Plan(parse.Model, trace.Graph);
            var parallelism = ParallelismValidator.Validate(parse.Model, pipeline, location);
            if (parallelism.Count > 0) return parallelism;
            var partition = Planning.ProgramPlanner.PlanPartition(parse.Model, trace.Graph, pipeline);
            if (partition is not null)
            {
                var problems = PartitionValidator.Validate(parse.Model, partition, location);
                if (problems.Count > 0) return problems;
                if (partition.LayerDropProblems.Count > 0) return LayerDropDiagnostics(partition.LayerDropProblems, model.Name, location);
            }
            var plan = Planning.ProgramPlanner.Plan(parse.Model, trace.Graph, pipeline, partition); // a planner failure surfaces as SW0009 below
            return PlanValidator.Validate(parse.Model, pipeline, plan.AssumedMemory, location)
                .Concat(CheckpointValidator.Validate(parse.Model, location)).ToEquatableArray();
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            return EquatableArray.Of(DiagnosticInfo.Create(DiagnosticDescriptors.InternalError,
                LocationInfo.From(model.Locations.IsEmpty ? null : model.Locations[0]), model.Name, error.GetType().Name + ": " + error.Message));
        }
    }

    /// <summary>SW0020 for each <c>[LayerDrop]</c> element that cannot be skipped, at its attribute.</summary>
    private static EquatableArray<DiagnosticInfo> LayerDropDiagnostics(EquatableArray<Planning.LayerDropProblem> problems, string model, LocationInfo? fallback)
        => problems.Select(p => DiagnosticInfo.Create(DiagnosticDescriptors.LayerCannotBeDropped, p.Location ?? fallback, p.Layer, model, p.Reason))
            .ToEquatableArray();

    /// <summary>Parses for the generator: a model, or null when anything is wrong (the analyzer says what).</summary>
    public static ModelSpec? ParseForGeneration(INamedTypeSymbol model, Compilation compilation, CancellationToken cancellationToken)
    {
        try
        {
            return ModelParser.Parse(model, compilation, cancellationToken).Model;
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            return null;
        }
    }
}
