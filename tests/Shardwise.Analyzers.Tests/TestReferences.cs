using System;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Testing;

namespace Shardwise.Analyzers.Tests;

/// <summary>
/// What the analyzed test compilations reference: the running .NET's own framework assemblies plus Shardwise.dll.
/// Taking them from this process (not from NuGet) keeps the tests offline and on the SDK's exact framework.
/// </summary>
internal static class TestReferences
{
    /// <summary>A target framework with no reference package, so the test framework resolves (and downloads) nothing.</summary>
    public static ReferenceAssemblies NoPackages { get; } = new("net10.0");

    public static ImmutableArray<MetadataReference> All { get; } = Create();

    private static ImmutableArray<MetadataReference> Create()
    {
        var references = FrameworkAssemblyPaths()
            .Append(typeof(ModelAttribute).Assembly.Location)
            .Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))
            .ToImmutableArray();
        return references;
    }

    /// <summary>
    /// The trusted platform assemblies that belong to the shared framework (the folder holding System.Private.CoreLib)
    /// and carry metadata. Restricting to that folder keeps the test's own dependencies (Roslyn, MSTest, NuGet) out of
    /// the analyzed compilation; the metadata check drops anything native that might be listed.
    /// </summary>
    private static string[] FrameworkAssemblyPaths()
    {
        var trusted = (string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")
            ?? throw new InvalidOperationException("The runtime did not provide TRUSTED_PLATFORM_ASSEMBLIES.");
        var frameworkDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        return trusted.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Where(path => string.Equals(Path.GetDirectoryName(path), frameworkDirectory, StringComparison.Ordinal))
            .Where(IsManagedAssembly)
            .OrderBy(path => path, StringComparer.Ordinal)
            .ToArray();
    }

    private static bool IsManagedAssembly(string path)
    {
        if (!path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) return false;
        try
        {
            using var stream = File.OpenRead(path);
            using var reader = new PEReader(stream);
            return reader.HasMetadata && reader.GetMetadataReader().IsAssembly;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}
