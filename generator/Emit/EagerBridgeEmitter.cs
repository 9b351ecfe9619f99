using System.Collections.Generic;
using System.Linq;
using Shardwise.Generator.Model;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Emit;

/// <summary>
/// Emits <c>GetParameters()</c>, which returns the eager layers' parameters in layout order, so weights move
/// between the debuggable eager model and the compiled program. Private fields of user layer classes are reached
/// through <c>UnsafeAccessor</c>: no reflection, and the user need not widen visibility.
/// </summary>
internal static class EagerBridgeEmitter
{
    public static void Write(SourceWriter w, ProgramPlan plan)
    {
        var accessors = new Dictionary<(string Owner, string Field), (string Name, string FieldType)>();
        var expressions = new List<string>();
        foreach (var slot in plan.Layout.Slots)
            expressions.Add(Expression(slot.Parameter.EagerPath, slot.Parameter.EagerMember, accessors));

        w.Line("/// <summary>The eager layers' parameters, in the order of <see cref=\"ParameterLayout\"/>.</summary>");
        w.Open("public global::Shardwise.Parameter[] GetParameters() => new global::Shardwise.Parameter[]");
        foreach (var expression in expressions) w.Line(expression + ",");
        w.Close(";");
        w.Line();
        w.Line("/// <summary>Copies the eager parameters into a flat buffer laid out as <see cref=\"ParameterLayout\"/>.</summary>");
        w.Line("public void CopyParametersTo<T>(global::System.Span<T> flat) where T : unmanaged, global::System.Numerics.INumberBase<T>");
        w.Line("    => ParameterLayout.Pack(GetParameters(), flat);");
        w.Line();
        w.Line("/// <summary>Loads the eager parameters from a flat buffer laid out as <see cref=\"ParameterLayout\"/>.</summary>");
        w.Line("public void CopyParametersFrom<T>(global::System.ReadOnlySpan<T> flat) where T : unmanaged, global::System.Numerics.INumberBase<T>");
        w.Line("    => ParameterLayout.Unpack(flat, GetParameters());");
        w.Line();
        w.Line("/// <summary>Initialises the eager parameters (GPT-2 style) deterministically from a seed.</summary>");
        w.Open("public void InitializeParameters(int seed)");
        w.Line("var flat = new float[ParameterLayout.TotalElements];");
        w.Line("ParameterLayout.Initialize<float>(flat, seed);");
        w.Line("CopyParametersFrom<float>(flat);");
        w.Close();

        foreach (var pair in accessors.OrderBy(p => p.Value.Name, System.StringComparer.Ordinal))
        {
            w.Line();
            w.Line($"[global::System.Runtime.CompilerServices.UnsafeAccessor(global::System.Runtime.CompilerServices.UnsafeAccessorKind.Field, Name = {Names.String(pair.Key.Field)})]");
            w.Line($"private static extern ref {pair.Value.FieldType} {pair.Value.Name}({pair.Key.Owner} owner);");
        }
    }

    private static string Expression(EquatableArray<LayerAccess> path, string member, Dictionary<(string, string), (string, string)> accessors)
    {
        string expression = "this";
        for (int i = 0; i < path.Count; i++)
        {
            var step = path[i];
            if (step.ElementIndex >= 0)
            {
                expression += "[" + Names.Int(step.ElementIndex) + "]";
            }
            else if (i == 0)
            {
                expression += "." + step.Field; // a field of the model itself: this partial class can see it
            }
            else
            {
                var key = (step.OwnerType, step.Field);
                if (!accessors.TryGetValue(key, out var accessor))
                {
                    accessor = ("__Field_" + Names.Identifier(step.OwnerType.Replace("global::", "")) + "_" + step.Field, step.FieldType);
                    accessors[key] = accessor;
                }
                expression = accessor.Item1 + "(" + expression + ")";
            }
        }
        // Optional biases are nullable on the eager layers, but the layout lists a bias only where one exists.
        return expression + "." + member + (member.EndsWith("Bias", System.StringComparison.Ordinal) ? "!" : "");
    }
}
