using System.Runtime.InteropServices;
using Shardwise.Native;

namespace Shardwise.Cuda.Interop;

/// <summary>
/// The CUDA driver API (libcuda.so.1), bound thinly: blittable signatures, status as <c>int</c> (CUresult), handles as
/// <c>nint</c>, device pointers as <c>ulong</c> (CUdeviceptr). Entry points are the versioned ABI names the CUDA headers
/// map the API to (<c>_v2</c>), which drivers keep exporting for binaries built against older toolkits.
/// </summary>
internal static unsafe partial class CuDriver
{
    private const string Lib = NativeLibraries.Cuda;

    static CuDriver() => NativeLibraries.EnsureRegistered();

    // CUdevice_attribute values used by the runtime.
    public const int AttributeMaxThreadsPerBlock = 1;
    public const int AttributeMaxSharedMemoryPerBlock = 8;
    public const int AttributeMaxSharedMemoryPerBlockOptIn = 97;
    public const int AttributeWarpSize = 10;
    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;

    /// <summary>CU_MEMHOSTALLOC_PORTABLE: the pinned memory is usable from every context.</summary>
    public const uint MemHostAllocPortable = 1;

    /// <summary>CU_STREAM_NON_BLOCKING: no implicit synchronisation with the legacy default stream.</summary>
    public const uint StreamNonBlocking = 1;

    /// <summary>CU_EVENT_DISABLE_TIMING.</summary>
    public const uint EventDisableTiming = 2;

    /// <summary>CUDA_ERROR_NOT_READY: cuEventQuery's answer while the work before the event is still running.</summary>
    public const int ErrorNotReady = 600;

    /// <summary>The driver's "name: description" for a CUresult; null when the driver does not know it.</summary>
    public static string? DescribeStatus(int status)
    {
        nint name, text;
        if (cuGetErrorName(status, &name) != 0 || cuGetErrorString(status, &text) != 0) return null;
        return $"{Marshal.PtrToStringUTF8(name)}: {Marshal.PtrToStringUTF8(text)}";
    }

    [LibraryImport(Lib)] public static partial int cuInit(uint flags);
    [LibraryImport(Lib)] public static partial int cuDriverGetVersion(int* version);
    [LibraryImport(Lib)] public static partial int cuGetErrorString(int error, nint* text);
    [LibraryImport(Lib)] public static partial int cuGetErrorName(int error, nint* name);

    [LibraryImport(Lib)] public static partial int cuDeviceGetCount(int* count);
    [LibraryImport(Lib)] public static partial int cuDeviceGet(int* device, int ordinal);
    [LibraryImport(Lib)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib)] public static partial int cuDeviceGetAttribute(int* value, int attribute, int device);
    [LibraryImport(Lib, EntryPoint = "cuDeviceTotalMem_v2")] public static partial int cuDeviceTotalMem(nuint* bytes, int device);

    [LibraryImport(Lib, EntryPoint = "cuCtxCreate_v2")] public static partial int cuCtxCreate(nint* context, uint flags, int device);
    [LibraryImport(Lib, EntryPoint = "cuCtxDestroy_v2")] public static partial int cuCtxDestroy(nint context);
    [LibraryImport(Lib)] public static partial int cuDevicePrimaryCtxRetain(nint* context, int device);
    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial int cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Lib)] public static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(Lib)] public static partial int cuCtxGetCurrent(nint* context);
    [LibraryImport(Lib, EntryPoint = "cuCtxPushCurrent_v2")] public static partial int cuCtxPushCurrent(nint context);
    [LibraryImport(Lib, EntryPoint = "cuCtxPopCurrent_v2")] public static partial int cuCtxPopCurrent(nint* context);
    [LibraryImport(Lib)] public static partial int cuCtxSynchronize();

    [LibraryImport(Lib)] public static partial int cuModuleLoadData(nint* module, void* image);
    [LibraryImport(Lib)] public static partial int cuModuleUnload(nint module);
    [LibraryImport(Lib)] public static partial int cuModuleGetFunction(nint* function, nint module, byte* name);
    [LibraryImport(Lib)] public static partial int cuFuncSetAttribute(nint function, int attribute, int value);

    [LibraryImport(Lib)]
    public static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ, uint sharedBytes, nint stream, void** parameters, void** extra);

    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")] public static partial int cuMemAlloc(ulong* pointer, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")] public static partial int cuMemFree(ulong pointer);
    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")] public static partial int cuMemGetInfo(nuint* free, nuint* total);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD8_v2")] public static partial int cuMemsetD8(ulong pointer, byte value, nuint count);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoD_v2")] public static partial int cuMemcpyHtoD(ulong destination, void* source, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoH_v2")] public static partial int cuMemcpyDtoH(void* destination, ulong source, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoD_v2")] public static partial int cuMemcpyDtoD(ulong destination, ulong source, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial int cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Lib)] public static partial int cuMemHostAlloc(void** pointer, nuint bytes, uint flags);
    [LibraryImport(Lib)] public static partial int cuMemFreeHost(void* pointer);

    [LibraryImport(Lib)] public static partial int cuStreamCreate(nint* stream, uint flags);
    [LibraryImport(Lib)] public static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")] public static partial int cuStreamDestroy(nint stream);
    [LibraryImport(Lib)] public static partial int cuStreamWaitEvent(nint stream, nint @event, uint flags);

    [LibraryImport(Lib)] public static partial int cuEventCreate(nint* @event, uint flags);
    [LibraryImport(Lib)] public static partial int cuEventRecord(nint @event, nint stream);
    [LibraryImport(Lib)] public static partial int cuEventSynchronize(nint @event);
    [LibraryImport(Lib)] public static partial int cuEventQuery(nint @event);
    [LibraryImport(Lib)] public static partial int cuEventElapsedTime(float* milliseconds, nint start, nint end);
    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")] public static partial int cuEventDestroy(nint @event);
}
