using Microsoft.CodeAnalysis;

namespace Shardwise.Generator.Model;

/// <summary>A diagnostic found by validation, as plain values; the analyzer turns it into a Roslyn diagnostic.</summary>
internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> Arguments)
{
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, LocationInfo? location, params string[] arguments)
        => new(descriptor.Id, location, EquatableArray.Of(arguments));
}
