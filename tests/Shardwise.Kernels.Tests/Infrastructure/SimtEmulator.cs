using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>Launch dimensions, as CUDA's dim3.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(int x) => new((uint)x);
}

/// <summary>The order in which the emulation resumes blocks and the threads inside a block.</summary>
public enum SchedulerOrder
{
    Forward,
    Reversed,
}

/// <summary>One kernel argument: its bytes (little-endian, zero-extended) and its size, as cuLaunchKernel takes it.</summary>
public readonly record struct KernelArg(ulong Bits, uint Size)
{
    public static readonly KernelArg Null = new(0, 8);

    public static implicit operator KernelArg(int value) => new((uint)value, 4);

    public static implicit operator KernelArg(long value) => new((ulong)value, 8);

    public static implicit operator KernelArg(float value) => new(BitConverter.SingleToUInt32Bits(value), 4);

    public static implicit operator KernelArg(nint pointer) => new((ulong)pointer, 8);

    public static implicit operator KernelArg(DeviceBuffer? buffer) => buffer is null ? Null : new((ulong)buffer.Pointer, 8);
}

/// <summary>
/// Runs kernels-cu/*.cu on the CPU through the SIMT emulation library that tests/kernels-harness/build.sh builds
/// (with g++) into the test output folder. Kernels are launched by their extern "C" names.
/// </summary>
public static unsafe class SimtEmulator
{
    private static nint library;
    private static delegate* unmanaged<byte*, uint, uint, uint, uint, uint, uint, ulong, int, ulong**, uint*, int, int> launch;
    private static delegate* unmanaged<int> kernelCount;
    private static delegate* unmanaged<int, nint> kernelName;
    private static delegate* unmanaged<nint> lastError;

    /// <summary>The repository root: the first ancestor of the test binaries that holds kernels-cu/.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string KernelsDirectory => Path.Combine(RepositoryRoot, "kernels-cu");

    /// <summary>Builds (when out of date) and loads the emulation library. Called once by the assembly initializer.</summary>
    public static void Initialize()
    {
        if (library != 0) return;
        string output = Path.Combine(AppContext.BaseDirectory, "kernels-emu");
        string script = Path.Combine(RepositoryRoot, "tests", "kernels-harness", "build.sh");
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(output);
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash");
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{script} failed with exit code {process.ExitCode}:\n{stdout}\n{stderr.Result}");
        }

        library = NativeLibrary.Load(Path.Combine(output, "libswkernels_emu.so"));
        launch = (delegate* unmanaged<byte*, uint, uint, uint, uint, uint, uint, ulong, int, ulong**, uint*, int, int>)
            NativeLibrary.GetExport(library, "simt_launch");
        kernelCount = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "simt_kernel_count");
        kernelName = (delegate* unmanaged<int, nint>)NativeLibrary.GetExport(library, "simt_kernel_name");
        lastError = (delegate* unmanaged<nint>)NativeLibrary.GetExport(library, "simt_last_error");
    }

    /// <summary>Every kernel the emulation library registered, by name.</summary>
    public static IReadOnlyList<string> KernelNames()
    {
        var names = new List<string>();
        for (int i = 0; i < kernelCount(); i++) names.Add(Marshal.PtrToStringUTF8(kernelName(i))!);
        return names;
    }

    public static void Launch(string kernel, Dim3 grid, Dim3 block, SchedulerOrder order,
        params ReadOnlySpan<KernelArg> arguments) =>
        Launch(kernel, grid, block, 0, order, arguments);

    /// <summary>Runs <paramref name="kernel"/>; throws with the emulator's reason when the launch fails.</summary>
    public static void Launch(string kernel, Dim3 grid, Dim3 block, ulong sharedBytes, SchedulerOrder order,
        params ReadOnlySpan<KernelArg> arguments)
    {
        string? error = TryLaunch(kernel, grid, block, sharedBytes, order, arguments);
        if (error is not null) throw new InvalidOperationException(error);
    }

    /// <summary>Runs <paramref name="kernel"/>; returns null, or the reason the launch failed.</summary>
    public static string? TryLaunch(string kernel, Dim3 grid, Dim3 block, ulong sharedBytes, SchedulerOrder order,
        ReadOnlySpan<KernelArg> arguments)
    {
        if (library == 0) throw new InvalidOperationException("SimtEmulator.Initialize has not run");
        ulong* values = stackalloc ulong[arguments.Length];
        ulong** pointers = stackalloc ulong*[arguments.Length];
        uint* sizes = stackalloc uint[arguments.Length];
        for (int i = 0; i < arguments.Length; i++)
        {
            values[i] = arguments[i].Bits;
            pointers[i] = &values[i];
            sizes[i] = arguments[i].Size;
        }

        byte[] name = System.Text.Encoding.UTF8.GetBytes(kernel + "\0");
        fixed (byte* n = name)
        {
            int result = launch(n, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes,
                order == SchedulerOrder.Reversed ? 1 : 0, pointers, sizes, arguments.Length);
            return result == 0 ? null : Marshal.PtrToStringUTF8(lastError());
        }
    }

    /// <summary>ceil(count / per).</summary>
    public static int Blocks(long count, int per) => (int)((count + per - 1) / per);

    private static string FindRepositoryRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (Directory.Exists(Path.Combine(d.FullName, "kernels-cu")) &&
                Directory.Exists(Path.Combine(d.FullName, "tests", "kernels-harness")))
            {
                return d.FullName;
            }
        }

        throw new InvalidOperationException($"no repository root (with kernels-cu/) above {AppContext.BaseDirectory}");
    }
}
