using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// The runtime's CUDA interop layer (Shardwise.Cuda): the kernel compiler and its PTX cache, library probing and the
/// missing-library message, and <see cref="CudaCheck"/>. These run anywhere NVRTC is installed, and assert that no
/// libcuda is found; the bindings on a device are <see cref="CudaInteropGpuTests"/>.
/// </summary>
[TestClass]
public sealed class CudaInteropTests
{
    private string cache = "";
    private readonly Dictionary<string, string?> savedVariables = new(StringComparer.Ordinal);

    [TestInitialize]
    public void CreateCache() => cache = Directory.CreateTempSubdirectory("shardwise-kernel-cache-").FullName;

    [TestCleanup]
    public void Cleanup()
    {
        foreach ((string name, string? value) in savedVariables) Environment.SetEnvironmentVariable(name, value);
        savedVariables.Clear();
        Directory.Delete(cache, recursive: true);
    }

    /// <summary>Sets an environment variable for this test only (tests in this assembly do not run in parallel).</summary>
    private void SetVariable(string name, string? value)
    {
        if (!savedVariables.ContainsKey(name)) savedVariables[name] = Environment.GetEnvironmentVariable(name);
        Environment.SetEnvironmentVariable(name, value);
    }

    private static void RequireNvrtc()
    {
        if (!Nvrtc.TryLoad(out string description)) Assert.Fail(description);
    }

    // ---- kernel compiler and cache -----------------------------------------------------------------------------

    [TestMethod]
    public void ASecondCompilationComesFromTheCacheWithoutRunningNvrtc()
    {
        RequireNvrtc();
        var first = new KernelCompiler(cache);
        IReadOnlyList<CompiledKernel> compiled = first.CompileAll(80);
        Assert.AreEqual(first.KernelFiles.Count, first.CompilationCount);
        Assert.IsTrue(compiled.All(k => !k.FromCache));
        Assert.AreEqual(compiled.Count, Directory.GetFiles(cache, "*.ptx").Length);

        var second = new KernelCompiler(cache);
        IReadOnlyList<CompiledKernel> cached = second.CompileAll(80);
        Assert.AreEqual(0, second.CompilationCount, "no NVRTC compilation on the second call");
        Assert.IsTrue(cached.All(k => k.FromCache));
        CollectionAssert.AreEqual(compiled.Select(k => k.Ptx).ToList(), cached.Select(k => k.Ptx).ToList());
        CollectionAssert.AreEqual(compiled.SelectMany(k => k.EntryPoints).ToList(),
            cached.SelectMany(k => k.EntryPoints).ToList());

        // The same instance also hits its own cache.
        Assert.IsTrue(first.Compile("gelu.cu", 80).FromCache);
        Assert.AreEqual(first.KernelFiles.Count, first.CompilationCount);
        Assert.AreEqual(0, Directory.GetFiles(cache, "*.tmp", SearchOption.AllDirectories).Length);
    }

    [TestMethod]
    public void TheCacheKeyChangesWithArchitectureSourcesNvrtcVersionAndOptions()
    {
        RequireNvrtc();
        var compiler = new KernelCompiler(cache);
        CompiledKernel at80 = compiler.Compile("cast.cu", 80);
        CompiledKernel at90 = compiler.Compile("cast.cu", 90);
        Assert.AreNotEqual(at80.CacheKey, at90.CacheKey);
        Assert.IsFalse(at90.FromCache, "compute_90 is not served compute_80's PTX");
        Assert.AreEqual(2, compiler.CompilationCount);
        StringAssert.Contains(at90.Ptx, ".target sm_90");
        Assert.AreEqual(2, Directory.GetFiles(cache, "*.ptx").Length);

        (int, int) version = Nvrtc.Version;
        string key = compiler.CacheKey("cast.cu", 80, version, KernelCompiler.Options(80));
        Assert.AreEqual(at80.CacheKey, key);
        Assert.AreEqual(64, key.Length, "hex SHA-256");
        Assert.AreNotEqual(key, compiler.CacheKey("gelu.cu", 80, version, KernelCompiler.Options(80)));
        Assert.AreNotEqual(key, compiler.CacheKey("cast.cu", 80, (99, 0), KernelCompiler.Options(80)));
        Assert.AreNotEqual(key, compiler.CacheKey("cast.cu", 80, version, [.. KernelCompiler.Options(80), "-lineinfo"]));

        // Any source changing (a header here) changes every key.
        KernelSource[] edited = KernelCompiler.EmbeddedSources
            .Select(s => s.Name == "shardwise_half.cuh" ? s with { Text = s.Text + "\n// edited\n" } : s).ToArray();
        Assert.AreNotEqual(key, new KernelCompiler(cache, edited).CacheKey("cast.cu", 80, version, KernelCompiler.Options(80)));
    }

    [TestMethod]
    [DataRow("garbage")]
    [DataRow("truncated")]
    [DataRow("empty")]
    [DataRow("edited")]
    public void ACorruptCacheEntryIsCompiledAgainAndReplaced(string damage)
    {
        RequireNvrtc();
        CompiledKernel good = new KernelCompiler(cache).Compile("overflow.cu", 80);
        string path = Path.Combine(cache, good.CacheKey + ".ptx");
        Assert.IsTrue(File.Exists(path));
        string text = File.ReadAllText(path);
        File.WriteAllText(path, damage switch
        {
            "garbage" => "\u0001\u0002 not a cache entry",
            "truncated" => text[..(text.Length / 2)],
            "empty" => "",
            _ => text.Replace(".entry", ".entrx", StringComparison.Ordinal),
        });

        var compiler = new KernelCompiler(cache);
        CompiledKernel recovered = compiler.Compile("overflow.cu", 80);
        Assert.IsFalse(recovered.FromCache);
        Assert.AreEqual(1, compiler.CompilationCount);
        Assert.AreEqual(1, compiler.CorruptEntriesReplaced);
        Assert.AreEqual(good.Ptx, recovered.Ptx);
        Assert.AreEqual(text, File.ReadAllText(path), "the entry was rewritten");

        CompiledKernel again = compiler.Compile("overflow.cu", 80);
        Assert.IsTrue(again.FromCache);
        Assert.AreEqual(1, compiler.CompilationCount);
    }

    [TestMethod]
    public void TheCacheDirectoryComesFromShardwiseKernelCache()
    {
        SetVariable(KernelCompiler.CacheVariable, cache);
        Assert.AreEqual(cache, KernelCompiler.DefaultCacheDirectory());
        Assert.AreEqual(cache, new KernelCompiler().CacheDirectory);

        SetVariable(KernelCompiler.CacheVariable, null);
        SetVariable("XDG_CACHE_HOME", null);
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.AreEqual(Path.Combine(home, ".cache", "shardwise", "kernels"), KernelCompiler.DefaultCacheDirectory());
    }

    [TestMethod]
    public void AnUnwritableCacheCostsACompilationNotAFailure()
    {
        RequireNvrtc();
        string blocked = Path.Combine(cache, "not-a-directory");
        File.WriteAllText(blocked, "a file where the cache directory should be");
        var compiler = new KernelCompiler(blocked);
        Assert.IsFalse(compiler.Compile("cast.cu", 80).FromCache);
        Assert.IsFalse(compiler.Compile("cast.cu", 80).FromCache);
        Assert.AreEqual(2, compiler.CompilationCount);
    }

    [TestMethod]
    public void HeadersAreServedFromTheEmbeddedSourcesNotTheFileSystem()
    {
        RequireNvrtc();
        // Run from a directory with no kernels-cu next to it: the includes still resolve.
        string previous = Environment.CurrentDirectory;
        try
        {
            Environment.CurrentDirectory = cache;
            CompiledKernel kernel = new KernelCompiler(cache).Compile("layernorm.cu", 90);
            CollectionAssert.Contains(kernel.EntryPoints.ToList(), "residual_layernorm_forward_bf16");
        }
        finally
        {
            Environment.CurrentDirectory = previous;
        }
    }

    [TestMethod]
    public void AnUnknownSourceIsAnArgumentError() =>
        Assert.ThrowsExactly<ArgumentException>(() => new KernelCompiler(cache).Compile("nope.cu", 80));

    // ---- library probing -----------------------------------------------------------------------------------------

    [TestMethod]
    public void WithoutLibcudaTryInitializeReturnsFalseWithAClearMessage()
    {
        SetVariable(CudaRuntime.SearchPathVariable, cache); // an empty directory
        // TryLoad: what is already loaded in this process counts too.
        if (CudaRuntime.TryLoad(CudaLibrary.Driver, out string found))
            Assert.Inconclusive($"libcuda is installed here ({found}); this test is for machines without it");

        bool initialized = CudaRuntime.TryInitialize(out string reason);

        Assert.IsFalse(initialized);
        StringAssert.Contains(reason, "libcuda.so.1");
        StringAssert.Contains(reason, "SHARDWISE_CUDA_PATH");
        StringAssert.Contains(reason, Path.Combine(cache, "libcuda.so.1"), "the search directory was tried first");
        StringAssert.Contains(reason, "CUDA driver API");
    }

    [TestMethod]
    public void WithoutLibcudaTheBindingsThrowTheSameMessageNotACrash()
    {
        SetVariable(CudaRuntime.SearchPathVariable, cache);
        if (CudaRuntime.TryLoad(CudaLibrary.Driver, out _)) Assert.Inconclusive("libcuda is installed here");

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => CudaContext.Primary());
        StringAssert.Contains(e.Message, "libcuda.so.1");
        StringAssert.Contains(e.Message, "SHARDWISE_CUDA_PATH");
        Assert.ThrowsExactly<InvalidOperationException>(() => _ = CudaDevice.Count);
    }

    [TestMethod]
    public void AMissingCudaLibraryIsADllNotFoundExceptionNamingItsFiles()
    {
        SetVariable(CudaRuntime.SearchPathVariable, cache);
        if (CudaRuntime.TryLoad(CudaLibrary.Cublas, out _) || CudaRuntime.TryLoad(CudaLibrary.Nccl, out _) ||
            CudaRuntime.TryLoad(CudaLibrary.CublasLt, out _))
        {
            Assert.Inconclusive("cuBLAS, cuBLASLt or NCCL is installed here");
        }

        // Through a binding: the resolver throws the message, the P/Invoke surfaces it.
        var e = Assert.ThrowsExactly<DllNotFoundException>(() => CublasHandle.Create());
        foreach (string name in new[] { "libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "SHARDWISE_CUDA_PATH" })
            StringAssert.Contains(e.Message, name);

        Assert.IsFalse(CudaRuntime.TryLoad(CudaLibrary.Nccl, out string nccl));
        StringAssert.Contains(nccl, "libnccl.so.2");
        Assert.IsFalse(CudaRuntime.TryLoad(CudaLibrary.CublasLt, out string lt));
        StringAssert.Contains(lt, "libcublasLt.so.13");
    }

    [TestMethod]
    public void TheSearchPathIsProbedFirstInOrderThenTheSystemLoader()
    {
        SetVariable(CudaRuntime.SearchPathVariable, "/opt/a: :/opt/b:");
        CollectionAssert.AreEqual(new[]
        {
            "/opt/a/libnvrtc.so.13", "/opt/a/libnvrtc.so.12", "/opt/a/libnvrtc.so.11.2", "/opt/a/libnvrtc.so",
            "/opt/b/libnvrtc.so.13", "/opt/b/libnvrtc.so.12", "/opt/b/libnvrtc.so.11.2", "/opt/b/libnvrtc.so",
            "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so",
        }, CudaRuntime.CandidateFiles(CudaLibrary.Nvrtc).ToArray());
        CollectionAssert.AreEqual(new[] { "/opt/a/libcuda.so.1", "/opt/b/libcuda.so.1", "libcuda.so.1" },
            CudaRuntime.CandidateFiles(CudaLibrary.Driver).ToArray());
        CollectionAssert.AreEqual(new[] { "/opt/a/libnccl.so.2", "/opt/b/libnccl.so.2", "libnccl.so.2" },
            CudaRuntime.CandidateFiles(CudaLibrary.Nccl).ToArray());

        SetVariable(CudaRuntime.SearchPathVariable, null);
        CollectionAssert.AreEqual(new[] { "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11" },
            CudaRuntime.CandidateFiles(CudaLibrary.CublasLt).ToArray());
    }

    [TestMethod]
    public void ALibraryInTheSearchPathIsPreferredToTheSystemOne()
    {
        RequireNvrtc();
        Assert.IsTrue(CudaRuntime.Probe(CudaLibrary.Nvrtc, out string system));
        string copy = Path.Combine(cache, "libnvrtc.so.13");
        string original = Path.IsPathRooted(system) ? system : ResolveSystemLibrary(system);
        File.Copy(original, copy);

        SetVariable(CudaRuntime.SearchPathVariable, "/nonexistent-shardwise-dir:" + cache);
        Assert.IsTrue(CudaRuntime.Probe(CudaLibrary.Nvrtc, out string found), found);
        Assert.AreEqual(copy, found);
    }

    private static string ResolveSystemLibrary(string fileName)
    {
        foreach (string directory in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/cuda/lib64" })
        {
            string path = Path.Combine(directory, fileName);
            if (File.Exists(path)) return path;
        }

        Assert.Inconclusive($"cannot find the file behind {fileName} to copy");
        return "";
    }

    // ---- CudaCheck -------------------------------------------------------------------------------------------

    [TestMethod]
    public void CudaCheckPassesSuccessWithoutAskingForAString()
    {
        CudaCheck.Check(CudaLibrary.Driver, 0, "cuInit", _ => throw new AssertFailedException("not called"));
        CudaCheck.Driver(0, "cuInit"); // the real providers are not touched either (no libcuda here)
        CudaCheck.Nccl(0, "ncclGroupEnd");
    }

    [TestMethod]
    [DataRow(CudaLibrary.Driver, 2, "cuMemAlloc_v2", "CUDA_ERROR_OUT_OF_MEMORY: out of memory",
        "cuMemAlloc_v2 failed: CUDA driver status 2 (CUDA_ERROR_OUT_OF_MEMORY: out of memory)")]
    [DataRow(CudaLibrary.Nvrtc, 6, "nvrtcCompileProgram", "NVRTC_ERROR_COMPILATION",
        "nvrtcCompileProgram failed: NVRTC status 6 (NVRTC_ERROR_COMPILATION)")]
    [DataRow(CudaLibrary.Cublas, 7, "cublasGemmEx", "CUBLAS_STATUS_INVALID_VALUE",
        "cublasGemmEx failed: cuBLAS status 7 (CUBLAS_STATUS_INVALID_VALUE)")]
    [DataRow(CudaLibrary.CublasLt, 15, "cublasLtMatmul", "CUBLAS_STATUS_NOT_SUPPORTED",
        "cublasLtMatmul failed: cuBLASLt status 15 (CUBLAS_STATUS_NOT_SUPPORTED)")]
    [DataRow(CudaLibrary.Nccl, 5, "ncclAllReduce", "invalid usage",
        "ncclAllReduce failed: NCCL status 5 (invalid usage)")]
    public void CudaCheckNamesTheCallTheLibraryTheCodeAndItsString(CudaLibrary library, int status, string call,
        string text, string expected)
    {
        var asked = new List<int>();
        var e = Assert.ThrowsExactly<CudaException>(() => CudaCheck.Check(library, status, call, s =>
        {
            asked.Add(s);
            return text;
        }));
        Assert.AreEqual(expected, e.Message);
        Assert.AreEqual(library, e.Library);
        Assert.AreEqual(call, e.Call);
        Assert.AreEqual(status, e.Status);
        Assert.AreEqual(text, e.StatusText);
        CollectionAssert.AreEqual(new[] { status }, asked);
    }

    [TestMethod]
    public void CudaCheckFallsBackWhenTheStringProviderHasNothing()
    {
        var empty = Assert.ThrowsExactly<CudaException>(() => CudaCheck.Check(CudaLibrary.Driver, 999, "cuX", _ => null));
        Assert.AreEqual("cuX failed: CUDA driver status 999 (no description available for this status)", empty.Message);
        var missing = Assert.ThrowsExactly<CudaException>(() =>
            CudaCheck.Check(CudaLibrary.Cublas, 3, "cublasCreate_v2", _ => throw new DllNotFoundException("gone")));
        StringAssert.Contains(missing.Message, "cublasCreate_v2 failed: cuBLAS status 3 (no description");
    }

    [TestMethod]
    public void CudaCheckUsesEachLibrarysOwnStrings()
    {
        RequireNvrtc();
        // NVRTC is installed here: its own text comes through.
        var nvrtc = Assert.ThrowsExactly<CudaException>(() => CudaCheck.Nvrtc(6, "nvrtcCompileProgram"));
        Assert.AreEqual("nvrtcCompileProgram failed: NVRTC status 6 (NVRTC_ERROR_COMPILATION)", nvrtc.Message);

        // Where a library is missing, a failing status still gives a CudaException, not a loader error.
        SetVariable(CudaRuntime.SearchPathVariable, cache);
        if (!CudaRuntime.TryLoad(CudaLibrary.Driver, out _))
        {
            var driver = Assert.ThrowsExactly<CudaException>(() => CudaCheck.Driver(2, "cuMemAlloc_v2"));
            Assert.AreEqual(CudaLibrary.Driver, driver.Library);
            StringAssert.StartsWith(driver.Message, "cuMemAlloc_v2 failed: CUDA driver status 2 (");
        }
    }
}
