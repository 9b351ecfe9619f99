using System;
using System.IO;

namespace Shardwise.Training.Tests;

/// <summary>Finds /work/shared from the test binaries: walk up to the repo root, then ../shared.</summary>
internal static class TestPaths
{
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln")) || Directory.Exists(Path.Combine(dir.FullName, ".git")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"no repository root (Compiler.sln or .git) above {AppContext.BaseDirectory}");
        }
    }

    public static string SharedDir => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string DsConfigs => Path.Combine(SharedDir, "ds_configs");

    public static string Config(string name) => Path.Combine(DsConfigs, name);
}
