using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;

namespace Shardwise.Cuda;

/// <summary>One CUDA source: its file name (what #include names it by) and its text.</summary>
public sealed record KernelSource(string Name, string Text);

/// <summary>The PTX of one kernels-cu file for one virtual architecture.</summary>
/// <param name="Architecture">The virtual architecture number: 80 for compute_80.</param>
/// <param name="EntryPoints">The <c>.entry</c> names in the PTX, in order.</param>
/// <param name="FromCache">True when the PTX came from the on-disk cache, false when NVRTC compiled it.</param>
public sealed record CompiledKernel(string SourceName, int Architecture, string Ptx, IReadOnlyList<string> EntryPoints,
    string CacheKey, bool FromCache);

/// <summary>NVRTC rejected a kernel source, or its log has a warning (which Shardwise treats as an error).</summary>
public sealed class KernelCompilationException(string sourceName, int architecture, string status, string log)
    : Exception($"{sourceName} (compute_{architecture}) does not compile cleanly: {status}\n{log}")
{
    public string SourceName { get; } = sourceName;

    public int Architecture { get; } = architecture;

    /// <summary>NVRTC's program log.</summary>
    public string Log { get; } = log;
}

/// <summary>
/// Compiles the kernels-cu sources embedded in this assembly to PTX with NVRTC, one module per <c>.cu</c> file, for a
/// virtual architecture (<c>--gpu-architecture=compute_XY --std=c++17</c>); the <c>.cuh</c> headers are served to
/// #include through nvrtcCreateProgram's header arrays, so no file system is needed. Any warning in the program log
/// fails the compilation (NVRTC has no -Werror).
/// <para>
/// PTX is cached on disk under <see cref="CacheDirectory"/> (<c>SHARDWISE_KERNEL_CACHE</c>, else
/// <c>~/.cache/shardwise/kernels</c>), one file per SHA-256 key of (every source, the file, the architecture, the
/// NVRTC version, the options). Entries are written to a temporary file and renamed into place, and carry a SHA-256
/// of their PTX: an entry that fails the check is compiled again and replaced.
/// </para>
/// </summary>
public sealed partial class KernelCompiler
{
    /// <summary>The environment variable that overrides the cache directory.</summary>
    public const string CacheVariable = "SHARDWISE_KERNEL_CACHE";

    private const string ResourcePrefix = "kernels-cu/";
    private const string EntryHeader = "// shardwise-kernel-cache v1 sha256:";

    private static readonly Lazy<IReadOnlyList<KernelSource>> Embedded = new(LoadEmbedded);

    private int compilations;
    private int corruptEntries;

    /// <param name="cacheDirectory">Where PTX is cached; null for <see cref="DefaultCacheDirectory"/>.</param>
    /// <param name="sources">The sources to compile; null for the embedded kernels-cu files.</param>
    public KernelCompiler(string? cacheDirectory = null, IReadOnlyList<KernelSource>? sources = null)
    {
        CacheDirectory = cacheDirectory ?? DefaultCacheDirectory();
        Sources = (sources ?? EmbeddedSources).OrderBy(s => s.Name, StringComparer.Ordinal).ToArray();
    }

    /// <summary>Every kernels-cu/*.cu and *.cuh embedded in this assembly, by file name.</summary>
    public static IReadOnlyList<KernelSource> EmbeddedSources => Embedded.Value;

    /// <summary><c>SHARDWISE_KERNEL_CACHE</c> when set, else <c>~/.cache/shardwise/kernels</c> (XDG_CACHE_HOME honoured).</summary>
    public static string DefaultCacheDirectory()
    {
        string? configured = Environment.GetEnvironmentVariable(CacheVariable);
        if (!string.IsNullOrWhiteSpace(configured)) return configured;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrWhiteSpace(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "shardwise", "kernels");
    }

    public string CacheDirectory { get; }

    /// <summary>All sources, headers included, ordered by name.</summary>
    public IReadOnlyList<KernelSource> Sources { get; }

    /// <summary>The names of the translation units (<c>*.cu</c>), ordered.</summary>
    public IReadOnlyList<string> KernelFiles =>
        Sources.Where(s => s.Name.EndsWith(".cu", StringComparison.Ordinal)).Select(s => s.Name).ToArray();

    /// <summary>How many times this compiler ran NVRTC (cache hits do not count).</summary>
    public int CompilationCount => Volatile.Read(ref compilations);

    /// <summary>How many cache entries failed their check and were compiled again.</summary>
    public int CorruptEntriesReplaced => Volatile.Read(ref corruptEntries);

    /// <summary>The NVRTC options for <paramref name="architecture"/>.</summary>
    public static IReadOnlyList<string> Options(int architecture) =>
        [$"--gpu-architecture=compute_{architecture}", "--std=c++17"];

    /// <summary>
    /// The virtual architecture to compile for on a device of compute capability <paramref name="computeCapability"/>
    /// (90 for sm_90): the newest this NVRTC supports that is not newer than the device. The driver JIT-compiles PTX
    /// of an older virtual architecture for a newer GPU, so an NVRTC older than the GPU (Debian's 11.2 knows nothing
    /// past compute_86) still serves it, where asking for compute_90 would fail.
    /// </summary>
    public static int ArchitectureFor(int computeCapability)
    {
        IReadOnlyList<int> supported = Nvrtc.SupportedArchitectures();
        int best = supported.Where(a => a <= computeCapability).DefaultIfEmpty(0).Max();
        return best != 0
            ? best
            : throw new InvalidOperationException(
                $"NVRTC {Nvrtc.Version.Major}.{Nvrtc.Version.Minor} supports compute_{string.Join(", compute_", supported)}, " +
                $"none of which runs on a device of compute capability {computeCapability / 10}.{computeCapability % 10}");
    }

    /// <summary>Compiles every <c>.cu</c> file for <paramref name="architecture"/> (e.g. 80, 90).</summary>
    public IReadOnlyList<CompiledKernel> CompileAll(int architecture) =>
        KernelFiles.Select(f => Compile(f, architecture)).ToArray();

    /// <summary>
    /// The PTX of <paramref name="fileName"/> for compute_<paramref name="architecture"/>: from the cache, or compiled
    /// by NVRTC and cached. Throws <see cref="KernelCompilationException"/> on an error or warning, and the library
    /// message (<see cref="InvalidOperationException"/>) when NVRTC cannot be loaded.
    /// </summary>
    public CompiledKernel Compile(string fileName, int architecture)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(architecture, 10);
        KernelSource source = Sources.FirstOrDefault(s => s.Name == fileName) ??
                              throw new ArgumentException($"no kernel source named '{fileName}'", nameof(fileName));
        if (!Nvrtc.TryLoad(out string nvrtc)) throw new InvalidOperationException(nvrtc);
        IReadOnlyList<string> options = Options(architecture);
        string key = CacheKey(fileName, architecture, Nvrtc.Version, options);
        string path = Path.Combine(CacheDirectory, key + ".ptx");

        string? cached = ReadEntry(path);
        if (cached is not null)
            return new CompiledKernel(fileName, architecture, cached, EntryPoints(cached), key, FromCache: true);

        Interlocked.Increment(ref compilations);
        var headers = Sources.Where(s => s.Name != fileName).Select(s => (s.Name, s.Text)).ToArray();
        NvrtcCompilation result = Nvrtc.Compile(source.Text, fileName, options, headers);
        if (!result.Succeeded || result.Ptx is null ||
            result.Log.Contains("warning", StringComparison.OrdinalIgnoreCase) ||
            result.Log.Contains("error", StringComparison.OrdinalIgnoreCase))
        {
            throw new KernelCompilationException(fileName, architecture, result.Status, result.Log);
        }

        WriteEntry(path, result.Ptx);
        return new CompiledKernel(fileName, architecture, result.Ptx, EntryPoints(result.Ptx), key, FromCache: false);
    }

    /// <summary>Compiles <paramref name="fileName"/> for the device of <paramref name="context"/> and loads it.</summary>
    public CudaModule Load(CudaContext context, string fileName) =>
        CudaModule.Load(context, Compile(fileName, ArchitectureFor(context.Device.ComputeCapability)).Ptx);

    /// <summary>The cache key: SHA-256 (hex) of every source, the file, the architecture, the NVRTC version and options.</summary>
    public string CacheKey(string fileName, int architecture, (int Major, int Minor) nvrtcVersion,
        IReadOnlyList<string> options)
    {
        var text = new StringBuilder("shardwise-kernel-cache v1\n");
        foreach (KernelSource s in Sources) text.Append($"source {s.Name} {s.Text.Length}\n").Append(s.Text).Append('\n');
        text.Append($"file {fileName}\narch {architecture}\nnvrtc {nvrtcVersion.Major}.{nvrtcVersion.Minor}\n");
        foreach (string option in options) text.Append($"option {option}\n");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>The <c>.entry</c> names of a PTX module.</summary>
    public static IReadOnlyList<string> EntryPoints(string ptx) =>
        EntryRegex().Matches(ptx).Select(m => m.Groups[1].Value).ToArray();

    private string? ReadEntry(string path)
    {
        string text;
        try
        {
            if (!File.Exists(path)) return null;
            text = File.ReadAllText(path, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        int newline = text.IndexOf('\n', StringComparison.Ordinal);
        if (newline > 0 && text.StartsWith(EntryHeader, StringComparison.Ordinal))
        {
            string hash = text[EntryHeader.Length..newline];
            string ptx = text[(newline + 1)..];
            if (hash == Hash(ptx) && ptx.Length > 0) return ptx;
        }

        Interlocked.Increment(ref corruptEntries);
        return null;
    }

    private static void WriteEntry(string path, string ptx)
    {
        string directory = Path.GetDirectoryName(path)!;
        string temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(directory);
            File.WriteAllText(temporary, EntryHeader + Hash(ptx) + "\n" + ptx, new UTF8Encoding(false));
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The cache is an optimisation: an unwritable cache directory costs a compilation next time, nothing more.
            try
            {
                File.Delete(temporary);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private static string Hash(string ptx) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ptx)));

    private static IReadOnlyList<KernelSource> LoadEmbedded()
    {
        Assembly assembly = typeof(KernelCompiler).Assembly;
        var sources = new List<KernelSource>();
        foreach (string resource in assembly.GetManifestResourceNames().Order(StringComparer.Ordinal))
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal)) continue;
            using Stream stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            sources.Add(new KernelSource(resource[ResourcePrefix.Length..], reader.ReadToEnd()));
        }

        return sources;
    }

    [GeneratedRegex(@"\.entry\s+(\w+)\s*\(")]
    private static partial Regex EntryRegex();
}
