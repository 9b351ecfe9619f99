using System;
using System.Diagnostics;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Kernels.Tests.Infrastructure;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// Builds the emulated NVIDIA libraries (tests/cuda-emulator/build.sh) into the test output folder and points the
/// runtime's library probing at them before any CUDA call, with SHARDWISE_REQUIRE_GPU=1 so that a fake library that
/// fails to load fails the device tests instead of leaving them inconclusive.
/// </summary>
[TestClass]
public static class EmulatedDevice
{
    /// <summary>The folder holding libcuda.so.1, libcublas.so.13, libcublasLt.so.13 and libnccl.so.2.</summary>
    public static string LibraryDirectory { get; private set; } = "";

    [AssemblyInitialize]
    public static void Build(TestContext context)
    {
        LibraryDirectory = Path.Combine(AppContext.BaseDirectory, "cuda-emulator");
        string script = Path.Combine(SimtEmulator.RepositoryRoot, "tests", "cuda-emulator", "build.sh");
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(LibraryDirectory);
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash");
        string output = process.StandardOutput.ReadToEnd(), errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{script} failed ({process.ExitCode}):\n{output}\n{errors}");

        Environment.SetEnvironmentVariable("SHARDWISE_CUDA_PATH", LibraryDirectory);
        Environment.SetEnvironmentVariable("SHARDWISE_REQUIRE_GPU", "1");
        Environment.SetEnvironmentVariable(GpuSupport.EmulatedDeviceVariable, "1");
    }
}
