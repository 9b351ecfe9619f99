using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>The outcome of one NVRTC compilation: the program log (warnings included) and the PTX on success.</summary>
public sealed record NvrtcCompilation(bool Succeeded, string Status, string Log, string? Ptx);

/// <summary>
/// NVRTC, the CUDA runtime compiler: CUDA 13, 12 or 11.x (Debian's libnvrtc11.2 is CUDA 11.8), found by the runtime's
/// library probing (<c>SHARDWISE_CUDA_PATH</c> first, then the system loader). Needs no GPU.
/// </summary>
public static unsafe class Nvrtc
{
    /// <summary>Loads NVRTC; false with the reason (library, files tried, SHARDWISE_CUDA_PATH) when it cannot.</summary>
    public static bool TryLoad(out string description)
    {
        if (!CudaRuntime.TryLoad(CudaLibrary.Nvrtc, out string loadedFromOrReason))
        {
            description = loadedFromOrReason;
            return false;
        }

        (int major, int minor) = Version;
        description = $"NVRTC {major}.{minor} from {loadedFromOrReason}";
        return true;
    }

    /// <summary>The NVRTC version (nvrtcVersion), e.g. (11, 8).</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            int major, minor;
            CudaCheck.Nvrtc(NvrtcNative.nvrtcVersion(&major, &minor), "nvrtcVersion");
            return (major, minor);
        }
    }

    /// <summary>The virtual architectures this NVRTC can target, e.g. 80 and 90 for compute_80 and compute_90.</summary>
    public static IReadOnlyList<int> SupportedArchitectures()
    {
        int count;
        CudaCheck.Nvrtc(NvrtcNative.nvrtcGetNumSupportedArchs(&count), "nvrtcGetNumSupportedArchs");
        var architectures = new int[count];
        fixed (int* p = architectures) CudaCheck.Nvrtc(NvrtcNative.nvrtcGetSupportedArchs(p), "nvrtcGetSupportedArchs");
        return architectures;
    }

    /// <summary>
    /// Compiles one translation unit to PTX. <paramref name="headers"/> (name, source) are served to #include before
    /// any include path named in <paramref name="options"/>. A failed compilation is a result (with its log), not an
    /// exception; an NVRTC failure other than a compile error throws <see cref="CudaException"/>.
    /// </summary>
    public static NvrtcCompilation Compile(string source, string name, IReadOnlyList<string> options,
        IReadOnlyList<(string Name, string Source)>? headers = null)
    {
        headers ??= [];
        var allocated = new List<nint>();
        try
        {
            byte* Utf8(string s)
            {
                nint p = Marshal.StringToCoTaskMemUTF8(s);
                allocated.Add(p);
                return (byte*)p;
            }

            var headerSources = new nint[headers.Count];
            var headerNames = new nint[headers.Count];
            for (int i = 0; i < headers.Count; i++)
            {
                headerSources[i] = (nint)Utf8(headers[i].Source);
                headerNames[i] = (nint)Utf8(headers[i].Name);
            }

            var optionPointers = new nint[options.Count];
            for (int i = 0; i < options.Count; i++) optionPointers[i] = (nint)Utf8(options[i]);

            using NvrtcProgram program = NvrtcProgram.Create(Utf8(source), Utf8(name), headerSources, headerNames);
            int result;
            fixed (nint* o = optionPointers)
                result = NvrtcNative.nvrtcCompileProgram(program.Value, optionPointers.Length, (byte**)o);
            string log = program.Log();
            string? ptx = result == 0 ? program.Ptx() : null;
            return new NvrtcCompilation(result == 0, NvrtcNative.DescribeStatus(result) ?? $"{result}", log, ptx);
        }
        finally
        {
            foreach (nint p in allocated) Marshal.FreeCoTaskMem(p);
        }
    }
}

/// <summary>An NVRTC program (nvrtcCreateProgram / nvrtcDestroyProgram).</summary>
public sealed unsafe class NvrtcProgram : SafeHandle
{
    /// <summary>For marshalling; programs are made by <see cref="Nvrtc.Compile"/>.</summary>
    public NvrtcProgram() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    internal nint Value => IsClosed ? throw new ObjectDisposedException(nameof(NvrtcProgram)) : handle;

    internal static NvrtcProgram Create(byte* source, byte* name, nint[] headerSources, nint[] headerNames)
    {
        var program = new NvrtcProgram();
        nint created;
        fixed (nint* sources = headerSources, names = headerNames)
        {
            CudaCheck.Nvrtc(NvrtcNative.nvrtcCreateProgram(&created, source, name, headerSources.Length,
                (byte**)sources, (byte**)names), "nvrtcCreateProgram");
        }

        program.SetHandle(created);
        return program;
    }

    internal string Log()
    {
        nuint size;
        CudaCheck.Nvrtc(NvrtcNative.nvrtcGetProgramLogSize(Value, &size), "nvrtcGetProgramLogSize");
        var bytes = new byte[(int)size];
        fixed (byte* p = bytes) CudaCheck.Nvrtc(NvrtcNative.nvrtcGetProgramLog(Value, p), "nvrtcGetProgramLog");
        return Text(bytes);
    }

    internal string Ptx()
    {
        nuint size;
        CudaCheck.Nvrtc(NvrtcNative.nvrtcGetPTXSize(Value, &size), "nvrtcGetPTXSize");
        var bytes = new byte[(int)size];
        fixed (byte* p = bytes) CudaCheck.Nvrtc(NvrtcNative.nvrtcGetPTX(Value, p), "nvrtcGetPTX");
        return Text(bytes);
    }

    private static string Text(byte[] bytes)
    {
        int end = Array.IndexOf(bytes, (byte)0);
        return Encoding.UTF8.GetString(bytes, 0, end < 0 ? bytes.Length : end);
    }

    protected override bool ReleaseHandle()
    {
        nint program = handle;
        return NvrtcNative.nvrtcDestroyProgram(&program) == 0;
    }
}
