using System;
using System.IO;

namespace Shardwise.Analyzers.Tests;

/// <summary>Reads files of this repository, so tests can check the real examples rather than copies of them.</summary>
internal static class RepositoryFiles
{
    public static string Read(string relativePath) => File.ReadAllText(Path.Combine(Root(), relativePath));

    /// <summary>The folder holding Compiler.sln, found by walking up from the test binaries.</summary>
    private static string Root()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Compiler.sln"))) return directory.FullName;
        }
        throw new InvalidOperationException("Compiler.sln was not found above " + AppContext.BaseDirectory);
    }
}
