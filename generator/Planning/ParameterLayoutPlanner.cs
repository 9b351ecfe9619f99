using System.Collections.Generic;
using Shardwise.Generator.Ir;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>One parameter's place in the flat parameter buffer.</summary>
internal sealed record ParameterSlot(IrParameter Parameter, long Offset)
{
    public long Length => Parameter.Elements;
}

/// <summary>Every parameter in one contiguous buffer, in execution order; <see cref="TotalElements"/> includes alignment padding.</summary>
internal sealed record ParameterLayoutPlan(EquatableArray<ParameterSlot> Slots, long TotalElements);

internal static class ParameterLayoutPlanner
{
    /// <summary>Each parameter starts on a 16-element boundary: 64 bytes in fp32, a cache line and a safe vector alignment.</summary>
    public const int AlignmentElements = 16;

    public static ParameterLayoutPlan Plan(IrGraph graph)
    {
        var slots = new List<ParameterSlot>();
        long offset = 0;
        foreach (var parameter in graph.Parameters)
        {
            slots.Add(new ParameterSlot(parameter, offset));
            offset = Align(offset + parameter.Elements);
        }
        return new ParameterLayoutPlan(slots.ToEquatableArray(), offset);
    }

    public static long Align(long elements) => (elements + AlignmentElements - 1) / AlignmentElements * AlignmentElements;
}
