using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// Every kernels-cu/*.cu compiles through NVRTC to PTX for compute_80 (A100) and compute_90 (H100/H200) with no
/// error and no warning, and exports exactly the entry points the CPU emulation runs.
/// </summary>
[TestClass]
public sealed partial class NvrtcCompileTests
{
    private static IReadOnlyList<string> KernelFiles =>
        Directory.GetFiles(SimtEmulator.KernelsDirectory, "*.cu").Order(StringComparer.Ordinal).ToArray();

    /// <summary>Compiles one source; returns the reasons it fails the check (empty when it passes).</summary>
    public static List<string> CheckedCompile(string source, string name, string architecture, out string? ptx)
    {
        NvrtcCompilation result = Nvrtc.Compile(source, name,
        [
            $"--gpu-architecture={architecture}",
            "--std=c++17",
            $"--include-path={SimtEmulator.KernelsDirectory}",
        ]);
        ptx = result.Ptx;
        var problems = new List<string>();
        if (!result.Succeeded) problems.Add($"{name} ({architecture}): {result.Status}");
        // NVRTC has no -Werror: any warning in the program log fails the check.
        if (result.Log.Contains("warning", StringComparison.OrdinalIgnoreCase) ||
            result.Log.Contains("error", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"{name} ({architecture}) log:\n{result.Log}");
        }

        return problems;
    }

    private static void RequireNvrtc()
    {
        if (!Nvrtc.TryLoad(out string description)) Assert.Fail(description);
    }

    [TestMethod]
    [DataRow("compute_80")]
    [DataRow("compute_90")]
    public void EveryKernelFileCompilesToPtxWithoutWarnings(string architecture)
    {
        RequireNvrtc();
        var problems = new List<string>();
        foreach (string file in KernelFiles)
        {
            string name = Path.GetFileName(file);
            problems.AddRange(CheckedCompile(File.ReadAllText(file), name, architecture, out string? ptx));
            if (ptx is null) continue;
            string target = ".target sm_" + architecture["compute_".Length..];
            if (!ptx.Contains(target, StringComparison.Ordinal)) problems.Add($"{name}: PTX lacks '{target}'");
            if (EntryPoints(ptx).Count == 0) problems.Add($"{name}: PTX has no entry point");
        }

        Assert.IsTrue(problems.Count == 0, string.Join("\n", problems));
    }

    [TestMethod]
    public void PtxEntryPointsAreExactlyTheKernelsTheEmulationRuns()
    {
        RequireNvrtc();
        var fromPtx = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string file in KernelFiles)
        {
            CheckedCompile(File.ReadAllText(file), Path.GetFileName(file), "compute_80", out string? ptx);
            Assert.IsNotNull(ptx, $"{file} did not compile");
            fromPtx.UnionWith(EntryPoints(ptx));
        }

        var emulated = new SortedSet<string>(
            SimtEmulator.KernelNames().Where(n => !n.StartsWith("selftest_", StringComparison.Ordinal)),
            StringComparer.Ordinal);
        CollectionAssert.AreEqual(fromPtx.ToList(), emulated.ToList(),
            $"PTX: {string.Join(", ", fromPtx)}\nemulation: {string.Join(", ", emulated)}");
        // Each kernel family has its three storage types.
        foreach (string family in new[] { "embedding_forward", "embedding_backward", "residual_layernorm_forward",
                     "layernorm_backward_dx", "layernorm_backward_dparams_partial", "layernorm_backward_dparams_reduce",
                     "bias_gelu_forward", "gelu_backward", "softmax_causal_forward", "softmax_causal_backward",
                     "crossentropy_fused_forward_backward", "adamw_step", "global_norm_squared",
                     "overflow_check_unscale" })
        {
            foreach (string suffix in new[] { "f32", "f16", "bf16" })
                Assert.IsTrue(fromPtx.Contains($"{family}_{suffix}"), $"missing {family}_{suffix}");
        }
    }

    [TestMethod]
    public void AWarningFailsTheCheck()
    {
        RequireNvrtc();
        const string source = "extern \"C\" __global__ void k(float* p) { int unused = 3; p[0] = 1.0f; }\n";
        List<string> problems = CheckedCompile(source, "warns.cu", "compute_80", out string? ptx);
        Assert.IsNotNull(ptx, "the source compiles");
        Assert.AreEqual(1, problems.Count);
        StringAssert.Contains(problems[0], "unused");
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

    private static List<string> EntryPoints(string ptx) =>
        EntryRegex().Matches(ptx).Select(m => m.Groups[1].Value).ToList();

    [GeneratedRegex(@"\.entry\s+(\w+)\s*\(")]
    private static partial Regex EntryRegex();
}
