using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Model;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Validation;

/// <summary>
/// <c>[Checkpoint]</c> options that cannot take effect (SW0022, a warning: the model still builds and trains, with the
/// checkpointed inputs kept whole): <c>PartitionInputs</c> on a model planned for one tensor rank, where there is
/// nothing to split over, or together with <c>InputsOnHost</c>, which moves the inputs to host memory instead.
/// Reported at the [Checkpoint] attribute.
/// </summary>
internal static class CheckpointValidator
{
    public static EquatableArray<DiagnosticInfo> Validate(ModelSpec model, LocationInfo? attribute)
    {
        var diagnostics = new List<DiagnosticInfo>();
        var reported = new HashSet<string>();
        foreach (var node in LayerPaths.Outermost(model.Root, n => n.Checkpoint && n.CheckpointPartitionInputs))
        {
            // The elements of a layer array share the field's attribute: one warning for the field.
            string field = FieldOf(node.Path);
            if (!reported.Add(field)) continue;
            string? reason = node.CheckpointInputsOnHost
                ? "InputsOnHost = true moves them to host memory instead (choose one of the two)"
                : model.Tensor <= 1
                    ? "the model is planned for one tensor rank (Tensor = " + model.Tensor.ToString(System.Globalization.CultureInfo.InvariantCulture) + "): there is nothing to split them over"
                    : null;
            if (reason is not null)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.CheckpointInputsNotPartitioned, node.CheckpointLocation ?? attribute, field, model.ClassName, reason));
        }
        return diagnostics.ToEquatableArray();
    }

    /// <summary>The field a layer path names: an array element's path ("blocks.3") without its index.</summary>
    private static string FieldOf(string path)
    {
        int dot = path.LastIndexOf('.');
        return dot > 0 && path.Substring(dot + 1).All(char.IsDigit) ? path.Substring(0, dot) : path;
    }
}
