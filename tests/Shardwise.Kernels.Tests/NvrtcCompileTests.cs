using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// Every kernels-cu/*.cu, as embedded in the runtime, compiles through the runtime's <see cref="KernelCompiler"/>
/// (NVRTC) to PTX for compute_80 (A100) and compute_90 (H100/H200) with no error and no warning, and exports exactly
/// the entry points the CPU emulation runs.
/// </summary>
[TestClass]
public sealed class NvrtcCompileTests
{
    private static string cacheDirectory = "";

    [ClassInitialize]
    public static void CreateCache(TestContext context) =>
        cacheDirectory = Directory.CreateTempSubdirectory("shardwise-nvrtc-tests-").FullName;

    [ClassCleanup]
    public static void DeleteCache() => Directory.Delete(cacheDirectory, recursive: true);

    /// <summary>The runtime's kernel compiler over the embedded kernels-cu sources, with this class's cache.</summary>
    private static KernelCompiler Compiler(IReadOnlyList<KernelSource>? sources = null) => new(cacheDirectory, sources);

    private static void RequireNvrtc()
    {
        if (!Nvrtc.TryLoad(out string description)) Assert.Fail(description);
    }

    [TestMethod]
    public void TheEmbeddedSourcesAreTheKernelsCuFiles()
    {
        var onDisk = Directory.GetFiles(SimtEmulator.KernelsDirectory)
            .Where(f => f.EndsWith(".cu", StringComparison.Ordinal) || f.EndsWith(".cuh", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToArray();
        CollectionAssert.AreEqual(onDisk.Select(Path.GetFileName).ToList(),
            KernelCompiler.EmbeddedSources.Select(s => s.Name).ToList());
        foreach (KernelSource source in KernelCompiler.EmbeddedSources)
        {
            Assert.AreEqual(File.ReadAllText(Path.Combine(SimtEmulator.KernelsDirectory, source.Name)), source.Text,
                $"{source.Name}: the embedded copy differs from the file");
        }
    }

    [TestMethod]
    [DataRow(80)]
    [DataRow(90)]
    public void EveryKernelFileCompilesToPtxWithoutWarnings(int architecture)
    {
        RequireNvrtc();
        KernelCompiler compiler = Compiler();
        Assert.IsTrue(compiler.KernelFiles.Count >= 9, $"kernel files: {string.Join(", ", compiler.KernelFiles)}");
        var problems = new List<string>();
        foreach (string file in compiler.KernelFiles)
        {
            CompiledKernel kernel;
            try
            {
                kernel = compiler.Compile(file, architecture);
            }
            catch (KernelCompilationException e)
            {
                problems.Add(e.Message);
                continue;
            }

            string target = $".target sm_{architecture}";
            if (!kernel.Ptx.Contains(target, StringComparison.Ordinal)) problems.Add($"{file}: PTX lacks '{target}'");
            if (kernel.EntryPoints.Count == 0) problems.Add($"{file}: PTX has no entry point");
        }

        Assert.IsTrue(problems.Count == 0, string.Join("\n", problems));
    }

    [TestMethod]
    public void PtxEntryPointsAreExactlyTheKernelsTheEmulationRuns()
    {
        RequireNvrtc();
        var fromPtx = new SortedSet<string>(StringComparer.Ordinal);
        foreach (CompiledKernel kernel in Compiler().CompileAll(80)) fromPtx.UnionWith(kernel.EntryPoints);

        var emulated = new SortedSet<string>(
            // selftest_ (the harness's own) and probe_ (device functions exposed to tests) kernels exist only there.
            SimtEmulator.KernelNames().Where(n => !n.StartsWith("selftest_", StringComparison.Ordinal) && !n.StartsWith("probe_", StringComparison.Ordinal)),
            StringComparer.Ordinal);
        CollectionAssert.AreEqual(fromPtx.ToList(), emulated.ToList(),
            $"PTX: {string.Join(", ", fromPtx)}\nemulation: {string.Join(", ", emulated)}");
        // Each kernel family has its three storage types.
        foreach (string family in new[] { "embedding_forward", "embedding_backward", "residual_layernorm_forward",
                     "layernorm_backward_dx", "layernorm_backward_dparams_partial", "layernorm_backward_dparams_reduce",
                     "layernorm_backward_fused_v1", "layernorm_backward_fused_v2", "layernorm_backward_fused_v3",
                     "layernorm_backward_fused_v4", "residual_layernorm_forward_v1", "residual_layernorm_forward_v2",
                     "residual_layernorm_forward_v3", "residual_layernorm_forward_v4",
                     "bias_gelu_forward", "gelu_backward", "softmax_causal_forward", "softmax_causal_backward",
                     "crossentropy_forward", "crossentropy_backward", "adamw_step", "lion_step", "adagrad_step", "global_norm_squared",
                     "overflow_check_unscale", "add", "add_backward", "scale", "add_bias", "add_bias_backward_partial",
                     "add_bias_backward_reduce", "embedding_range_forward", "embedding_range_backward",
                     "crossentropy_row_max", "crossentropy_partials", "crossentropy_range_backward",
                     "gather_tokens", "gather_tokens_backward", "scatter_tokens", "scatter_tokens_backward" })
        {
            foreach (string suffix in new[] { "f32", "f16", "bf16" })
                Assert.IsTrue(fromPtx.Contains($"{family}_{suffix}"), $"missing {family}_{suffix}");
        }

        // The kernels with a single entry point (no storage type, or fp32 statistics only).
        foreach (string single in new[] { "sum_f32", "positions_i32", "crossentropy_loss_from_partials_f32" })
            Assert.IsTrue(fromPtx.Contains(single), $"missing {single}");
    }

    [TestMethod]
    public void AWarningFailsTheCheck()
    {
        RequireNvrtc();
        const string source = "extern \"C\" __global__ void k(float* p) { int unused = 3; p[0] = 1.0f; }\n";
        // NVRTC itself accepts it (PTX, a warning in the log); the runtime's compiler rejects it.
        NvrtcCompilation raw = Nvrtc.Compile(source, "warns.cu", KernelCompiler.Options(80));
        Assert.IsTrue(raw.Succeeded, raw.Log);
        Assert.IsNotNull(raw.Ptx);
        StringAssert.Contains(raw.Log, "warning");

        KernelCompiler compiler = Compiler([new KernelSource("warns.cu", source)]);
        var e = Assert.ThrowsExactly<KernelCompilationException>(() => compiler.Compile("warns.cu", 80));
        StringAssert.Contains(e.Message, "unused");
        Assert.AreEqual("warns.cu", e.SourceName);
    }

    [TestMethod]
    public void AnErrorIsAResultFromNvrtcAndAnExceptionFromTheCompiler()
    {
        RequireNvrtc();
        const string source = "extern \"C\" __global__ void k(float* p) { p[0] = undeclared; }\n";
        NvrtcCompilation raw = Nvrtc.Compile(source, "broken.cu", KernelCompiler.Options(80));
        Assert.IsFalse(raw.Succeeded);
        Assert.IsNull(raw.Ptx);
        StringAssert.Contains(raw.Log, "undeclared");
        StringAssert.Contains(raw.Status, "NVRTC_ERROR_COMPILATION");

        KernelCompiler compiler = Compiler([new KernelSource("broken.cu", source)]);
        var e = Assert.ThrowsExactly<KernelCompilationException>(() => compiler.Compile("broken.cu", 80));
        StringAssert.Contains(e.Log, "undeclared");
        Assert.AreEqual(1, compiler.CompilationCount);
        Assert.AreEqual(0, Directory.GetFiles(cacheDirectory, "*.tmp").Length, "no temporary file is left behind");
    }

    [TestMethod]
    public void Compute80And90AreSupported()
    {
        RequireNvrtc();
        IReadOnlyList<int> architectures = Nvrtc.SupportedArchitectures();
        CollectionAssert.Contains(architectures.ToList(), 80);
        CollectionAssert.Contains(architectures.ToList(), 90);
    }

    [TestMethod]
    public void EveryKernelSourceNamesWhatItComputesAndItsCpuReference()
    {
        foreach (string file in Directory.GetFiles(SimtEmulator.KernelsDirectory, "*.cu*"))
        {
            string text = File.ReadAllText(file), name = Path.GetFileName(file);
            Assert.IsTrue(text.StartsWith($"// {name} — ", StringComparison.Ordinal), $"{name}: opening comment");
            StringAssert.Contains(text, "CPU reference", $"{name} names its CPU reference");
            Assert.IsFalse(Regex.IsMatch(text, @"#include\s*<"), $"{name} includes a system or toolkit header");
        }
    }
}
