using System.Runtime.InteropServices;
using Shardwise.Native;

namespace Shardwise.Cuda.Interop;

/// <summary>NVRTC (libnvrtc.so.13/.12/.11.2), bound thinly; status is <c>int</c> (nvrtcResult).</summary>
internal static unsafe partial class NvrtcNative
{
    private const string Lib = NativeLibraries.Nvrtc;

    static NvrtcNative() => NativeLibraries.EnsureRegistered();

    public static string? DescribeStatus(int status) => Marshal.PtrToStringUTF8(nvrtcGetErrorString(status));

    [LibraryImport(Lib)] public static partial int nvrtcVersion(int* major, int* minor);
    [LibraryImport(Lib)] public static partial nint nvrtcGetErrorString(int result);
    [LibraryImport(Lib)] public static partial int nvrtcGetNumSupportedArchs(int* count);
    [LibraryImport(Lib)] public static partial int nvrtcGetSupportedArchs(int* architectures);

    [LibraryImport(Lib)]
    public static partial int nvrtcCreateProgram(nint* program, byte* source, byte* name, int headerCount,
        byte** headers, byte** includeNames);

    [LibraryImport(Lib)] public static partial int nvrtcDestroyProgram(nint* program);
    [LibraryImport(Lib)] public static partial int nvrtcCompileProgram(nint program, int optionCount, byte** options);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLogSize(nint program, nuint* size);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(Lib)] public static partial int nvrtcGetPTXSize(nint program, nuint* size);
    [LibraryImport(Lib)] public static partial int nvrtcGetPTX(nint program, byte* ptx);
}
