using System.Collections.Generic;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Planning;

namespace Shardwise.Generator.Emit;

/// <summary>The field name of every planned buffer and parameter slice in a generated program, made unique.</summary>
internal sealed class BufferNames
{
    private readonly Dictionary<(int, BufferRole), string> _activations = new();
    private readonly Dictionary<int, string> _indices = new();
    private readonly Dictionary<int, string> _parameters = new();
    private readonly HashSet<string> _used = new();
    private readonly HashSet<int> _gradientsOverValues = new();

    public BufferNames(ProgramPlan plan)
    {
        foreach (var slot in plan.Layout.Slots)
            _parameters[slot.Parameter.Id] = Unique(Names.Identifier(slot.Parameter.Name));
        foreach (var buffer in plan.Activations.Indices)
            _indices[buffer.Value] = Unique("_" + Names.Identifier(buffer.Name));
        foreach (var buffer in plan.Activations.Buffers)
        {
            string name = plan.Graph.Values[buffer.Value].Name;
            _activations[(buffer.Value, buffer.Role)] = Unique(buffer.Role switch
            {
                BufferRole.Gradient => "_d_",
                BufferRole.Partition => "_part_",
                _ => "_",
            } + Names.Identifier(name));
        }
        foreach (int value in plan.Activations.GradientsOverValues) _gradientsOverValues.Add(value);
    }

    /// <summary>Whether <paramref name="value"/>'s gradient buffer is its value buffer (<see cref="InPlaceGradientPlanner"/>).</summary>
    public bool GradientOverValue(int value) => _gradientsOverValues.Contains(value);

    public string Value(int value) => _activations[(value, BufferRole.Value)];

    public string Gradient(int value) => _activations[(value, BufferRole.Gradient)];

    /// <summary>This tensor rank's part of a checkpointed input (<see cref="BufferRole.Partition"/>).</summary>
    public string Partition(int value) => _activations[(value, BufferRole.Partition)];

    /// <summary>The field of a planned activation buffer, whatever its role.</summary>
    public string Buffer(ActivationBuffer buffer) => _activations[(buffer.Value, buffer.Role)];

    public string Index(int value) => _indices[value];

    public string Parameter(int parameter) => "P_" + _parameters[parameter];

    public string ParameterGradient(int parameter) => "G_" + _parameters[parameter];

    private string Unique(string name)
    {
        string candidate = name;
        for (int i = 2; !_used.Add(candidate); i++) candidate = name + "_" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return candidate;
    }
}
