using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Model;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Validation;

/// <summary>
/// What makes a planned partition unrunnable: a tensor split that would need an extra gather or scatter (SW0017, at
/// the layer's [Shard] attribute, or the layer), and a pipeline cut that would pass more than one tensor (SW0019, at
/// the [Model] attribute).
/// </summary>
internal static class PartitionValidator
{
    public static EquatableArray<DiagnosticInfo> Validate(ModelSpec model, PartitionPlan partition, LocationInfo? attribute)
    {
        var diagnostics = new List<DiagnosticInfo>();
        foreach (var problem in partition.SplitProblems)
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TensorSplitNeedsGather, problem.Location ?? attribute, problem.Layer, problem.Problem));
        foreach (var problem in partition.StageProblems.Distinct())
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.StageBoundaryPassesSeveralTensors, attribute, model.ClassName, problem));
        return diagnostics.ToEquatableArray();
    }
}
