using System;
using System.Collections.Generic;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>The outcome of one NVRTC compilation: the program log (warnings included) and the PTX on success.</summary>
public sealed record NvrtcCompilation(bool Succeeded, string Status, string Log, string? Ptx);

/// <summary>
/// NVRTC, the CUDA runtime compiler, loaded at run time: CUDA 13, 12 or 11.x (Debian's libnvrtc11.2 is CUDA 11.8).
/// <c>SHARDWISE_NVRTC</c> may name the library file to use instead of probing. Written to move unchanged into the
/// runtime's CUDA backend, which will compile kernels-cu/*.cu to PTX with it.
/// </summary>
public static unsafe partial class Nvrtc
{
    private const string Library = "shardwise-nvrtc";

    /// <summary>The library names probed in order, newest first.</summary>
    public static readonly IReadOnlyList<string> LibraryNames =
        ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];

    private static readonly object Gate = new();
    private static nint handle;
    private static string? loadedFrom;
    private static bool resolverSet;

    /// <summary>Loads NVRTC once; false with the reason when no library could be loaded.</summary>
    public static bool TryLoad(out string description)
    {
        lock (Gate)
        {
            if (handle == 0)
            {
                string? overridePath = Environment.GetEnvironmentVariable("SHARDWISE_NVRTC");
                IEnumerable<string> candidates = string.IsNullOrEmpty(overridePath) ? LibraryNames : [overridePath];
                foreach (string candidate in candidates)
                {
                    if (NativeLibrary.TryLoad(candidate, out handle))
                    {
                        loadedFrom = candidate;
                        break;
                    }
                }

                if (handle == 0)
                {
                    description = $"no NVRTC library could be loaded (tried {string.Join(", ", candidates)}); " +
                                  "run scripts/setup-cuda-tools.sh, or set SHARDWISE_NVRTC to the library file";
                    return false;
                }

                if (!resolverSet)
                {
                    NativeLibrary.SetDllImportResolver(typeof(Nvrtc).Assembly, Resolve);
                    resolverSet = true;
                }
            }

            Check(NvrtcVersion(out int major, out int minor), "nvrtcVersion");
            description = $"NVRTC {major}.{minor} from {loadedFrom}";
            return true;
        }
    }

    /// <summary>The virtual architectures this NVRTC can target, e.g. 80 and 90 for compute_80 and compute_90.</summary>
    public static IReadOnlyList<int> SupportedArchitectures()
    {
        Check(NvrtcGetNumSupportedArchs(out int count), "nvrtcGetNumSupportedArchs");
        var architectures = new int[count];
        fixed (int* p = architectures) Check(NvrtcGetSupportedArchs(p), "nvrtcGetSupportedArchs");
        return architectures;
    }

    /// <summary>
    /// Compiles one translation unit to PTX. <paramref name="headers"/> (name, source) are served to #include before
    /// the include paths named in <paramref name="options"/> are searched.
    /// </summary>
    public static NvrtcCompilation Compile(string source, string name, IReadOnlyList<string> options,
        IReadOnlyList<(string Name, string Source)>? headers = null)
    {
        headers ??= [];
        var allocated = new List<nint>();
        try
        {
            nint Utf8(string s)
            {
                nint p = Marshal.StringToCoTaskMemUTF8(s);
                allocated.Add(p);
                return p;
            }

            var headerSources = new nint[headers.Count];
            var headerNames = new nint[headers.Count];
            for (int i = 0; i < headers.Count; i++)
            {
                headerSources[i] = Utf8(headers[i].Source);
                headerNames[i] = Utf8(headers[i].Name);
            }

            var optionPointers = new nint[options.Count];
            for (int i = 0; i < options.Count; i++) optionPointers[i] = Utf8(options[i]);

            nint program;
            fixed (nint* sources = headerSources, names = headerNames)
            {
                Check(NvrtcCreateProgram(out program, Utf8(source), Utf8(name), headers.Count, sources, names),
                    "nvrtcCreateProgram");
            }

            try
            {
                int result;
                fixed (nint* o = optionPointers) result = NvrtcCompileProgram(program, optionPointers.Length, o);
                string log = ReadString(program, NvrtcGetProgramLogSize, NvrtcGetProgramLog, "program log");
                string? ptx = result == 0 ? ReadString(program, NvrtcGetPTXSize, NvrtcGetPTX, "PTX") : null;
                return new NvrtcCompilation(result == 0, ErrorString(result), log, ptx);
            }
            finally
            {
                NvrtcDestroyProgram(ref program);
            }
        }
        finally
        {
            foreach (nint p in allocated) Marshal.FreeCoTaskMem(p);
        }
    }

    private delegate int SizeGetter(nint program, out nuint size);

    private delegate int ContentGetter(nint program, byte* destination);

    private static string ReadString(nint program, SizeGetter size, ContentGetter content, string what)
    {
        Check(size(program, out nuint length), $"size of the {what}");
        var bytes = new byte[(int)length];
        fixed (byte* p = bytes) Check(content(program, p), what);
        int end = Array.IndexOf(bytes, (byte)0);
        return System.Text.Encoding.UTF8.GetString(bytes, 0, end < 0 ? bytes.Length : end);
    }

    private static string ErrorString(int result) => Marshal.PtrToStringUTF8(NvrtcGetErrorString(result)) ?? $"{result}";

    private static void Check(int result, string call)
    {
        if (result != 0) throw new InvalidOperationException($"{call} failed: {ErrorString(result)}");
    }

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        name == Library ? handle : 0;

    [LibraryImport(Library, EntryPoint = "nvrtcVersion")]
    private static partial int NvrtcVersion(out int major, out int minor);

    [LibraryImport(Library, EntryPoint = "nvrtcGetNumSupportedArchs")]
    private static partial int NvrtcGetNumSupportedArchs(out int count);

    [LibraryImport(Library, EntryPoint = "nvrtcGetSupportedArchs")]
    private static partial int NvrtcGetSupportedArchs(int* architectures);

    [LibraryImport(Library, EntryPoint = "nvrtcGetErrorString")]
    private static partial nint NvrtcGetErrorString(int result);

    [LibraryImport(Library, EntryPoint = "nvrtcCreateProgram")]
    private static partial int NvrtcCreateProgram(out nint program, nint source, nint name, int headerCount,
        nint* headers, nint* includeNames);

    [LibraryImport(Library, EntryPoint = "nvrtcCompileProgram")]
    private static partial int NvrtcCompileProgram(nint program, int optionCount, nint* options);

    [LibraryImport(Library, EntryPoint = "nvrtcDestroyProgram")]
    private static partial int NvrtcDestroyProgram(ref nint program);

    [LibraryImport(Library, EntryPoint = "nvrtcGetProgramLogSize")]
    private static partial int NvrtcGetProgramLogSize(nint program, out nuint size);

    [LibraryImport(Library, EntryPoint = "nvrtcGetProgramLog")]
    private static partial int NvrtcGetProgramLog(nint program, byte* log);

    [LibraryImport(Library, EntryPoint = "nvrtcGetPTXSize")]
    private static partial int NvrtcGetPTXSize(nint program, out nuint size);

    [LibraryImport(Library, EntryPoint = "nvrtcGetPTX")]
    private static partial int NvrtcGetPTX(nint program, byte* ptx);
}
