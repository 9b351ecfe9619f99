using System;
using System.IO;

namespace Shardwise.Data.Tests;

/// <summary>Real corpora live outside the repository: walk up to the folder holding Compiler.sln, then ../shared/data.</summary>
internal static class TestData
{
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"no Compiler.sln above {AppContext.BaseDirectory}");
        }
    }

    public static string DataDir => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));

    public static string ShakespeareText => Existing(Path.Combine(DataDir, "tinyshakespeare.txt"));

    public static string ShakespeareJsonl => Existing(Path.Combine(DataDir, "tinyshakespeare.jsonl"));

    private static string Existing(string path) =>
        File.Exists(path) ? path : throw new FileNotFoundException($"test corpus missing: {path}", path);
}

/// <summary>A temp file deleted at dispose, for malformed inputs that must not live in the repo.</summary>
internal sealed class TempFile : IDisposable
{
    public TempFile(string extension, string contents)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"shardwise-data-{Guid.NewGuid():N}{extension}");
        File.WriteAllText(Path, contents);
    }

    public TempFile(string extension, byte[] contents)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"shardwise-data-{Guid.NewGuid():N}{extension}");
        File.WriteAllBytes(Path, contents);
    }

    public string Path { get; }

    public void Dispose() => File.Delete(Path);
}
