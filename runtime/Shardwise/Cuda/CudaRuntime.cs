using System;
using System.Collections.Generic;
using Shardwise.Cuda.Interop;
using Shardwise.Native;

namespace Shardwise.Cuda;

/// <summary>
/// Entry point of the CUDA backend: finds the libraries, initialises the driver and describes the devices. A machine
/// without the libraries gets one clear message from <see cref="TryInitialize"/> (which library, which files were
/// tried, <c>SHARDWISE_CUDA_PATH</c>), never a crash inside a call.
/// </summary>
public static unsafe class CudaRuntime
{
    private static readonly object Gate = new();
    private static string? initialized;

    /// <summary>The environment variable that lists directories probed first for the CUDA libraries (colon-separated).</summary>
    public const string SearchPathVariable = NativeLibraries.CudaSearchPathVariable;

    /// <summary>
    /// Loads libcuda, runs <c>cuInit</c> and checks that there is at least one device. True with a description of the
    /// driver and devices; false with the reason. Never throws for a missing library or device. Succeeds once per
    /// process; a failure is retried on the next call.
    /// </summary>
    public static bool TryInitialize(out string reason)
    {
        lock (Gate)
        {
            if (initialized is not null)
            {
                reason = initialized;
                return true;
            }

            if (!NativeLibraries.TryLoad(NativeLibraries.Cuda, out _, out string path, out string failure))
            {
                reason = failure;
                return false;
            }

            int status = CuDriver.cuInit(0);
            if (status != 0)
            {
                reason = $"{path} loaded, but " +
                         CudaCheck.Failure(CudaLibrary.Driver, status, "cuInit", CuDriver.DescribeStatus).Message;
                return false;
            }

            int count, version;
            CudaCheck.Driver(CuDriver.cuDeviceGetCount(&count), "cuDeviceGetCount");
            CudaCheck.Driver(CuDriver.cuDriverGetVersion(&version), "cuDriverGetVersion");
            if (count == 0)
            {
                reason = $"{path} loaded and initialised, but it reports no CUDA device";
                return false;
            }

            var devices = new List<string>();
            for (int i = 0; i < count; i++) devices.Add(CudaDevice.Get(i).ToString());
            initialized = $"CUDA driver {version / 1000}.{version % 1000 / 10} from {path}; {count} device(s): " +
                          string.Join("; ", devices);
            reason = initialized;
            return true;
        }
    }

    /// <summary>Initialises the driver or throws <see cref="InvalidOperationException"/> with the reason it cannot.</summary>
    public static void EnsureInitialized()
    {
        if (!TryInitialize(out string reason)) throw new InvalidOperationException(reason);
    }

    /// <summary>
    /// Loads one CUDA library without calling into it: true with the file it came from, false with the message that
    /// names the library, the files tried and <c>SHARDWISE_CUDA_PATH</c>.
    /// </summary>
    public static bool TryLoad(CudaLibrary library, out string loadedFromOrReason)
    {
        bool ok = NativeLibraries.TryLoad(LogicalName(library), out _, out string path, out string failure);
        loadedFromOrReason = ok ? path : failure;
        return ok;
    }

    /// <summary>
    /// Probes <paramref name="library"/> now, ignoring the process's cache, and unloads what it found: true with the
    /// file that would be used, false with the failure message. For diagnostics and tests.
    /// </summary>
    public static bool Probe(CudaLibrary library, out string loadedFromOrReason)
    {
        bool ok = NativeLibraries.Probe(LogicalName(library), out nint handle, out string path, out string failure);
        if (ok) System.Runtime.InteropServices.NativeLibrary.Free(handle);
        loadedFromOrReason = ok ? path : failure;
        return ok;
    }

    /// <summary>The files probed for <paramref name="library"/>, in order, under the current environment.</summary>
    public static IReadOnlyList<string> CandidateFiles(CudaLibrary library) =>
        NativeLibraries.CandidatePaths(LogicalName(library));

    private static string LogicalName(CudaLibrary library) => library switch
    {
        CudaLibrary.Driver => NativeLibraries.Cuda,
        CudaLibrary.Nvrtc => NativeLibraries.Nvrtc,
        CudaLibrary.Cublas => NativeLibraries.Cublas,
        CudaLibrary.CublasLt => NativeLibraries.CublasLt,
        CudaLibrary.Nccl => NativeLibraries.Nccl,
        _ => throw new ArgumentOutOfRangeException(nameof(library)),
    };
}

/// <summary>
/// One CUDA device: its ordinal, name, compute capability and size. <see cref="MaxSharedMemoryPerBlockOptIn"/> is the
/// dynamic shared memory a kernel may take after opting in (227 KiB on sm_90, 163 KiB on sm_80).
/// </summary>
public sealed record CudaDevice(int Ordinal, string Name, int Major, int Minor, int MultiprocessorCount,
    int MaxThreadsPerBlock, int MaxSharedMemoryPerBlock, ulong TotalMemory, int MaxSharedMemoryPerBlockOptIn)
{
    /// <summary>The compute capability as NVRTC's architecture number: 80 for 8.0, 90 for 9.0.</summary>
    public int ComputeCapability => Major * 10 + Minor;

    /// <summary>The number of devices (initialises the driver first).</summary>
    public static unsafe int Count
    {
        get
        {
            CudaRuntime.EnsureInitialized();
            int count;
            CudaCheck.Driver(CuDriver.cuDeviceGetCount(&count), "cuDeviceGetCount");
            return count;
        }
    }

    /// <summary>Describes device <paramref name="ordinal"/> (cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute).</summary>
    public static unsafe CudaDevice Get(int ordinal)
    {
        int device;
        CudaCheck.Driver(CuDriver.cuDeviceGet(&device, ordinal), "cuDeviceGet");
        byte* name = stackalloc byte[256];
        CudaCheck.Driver(CuDriver.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        nuint total;
        CudaCheck.Driver(CuDriver.cuDeviceTotalMem(&total, device), "cuDeviceTotalMem_v2");
        return new CudaDevice(ordinal,
            System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)name) ?? "",
            Attribute(device, CuDriver.AttributeComputeCapabilityMajor),
            Attribute(device, CuDriver.AttributeComputeCapabilityMinor),
            Attribute(device, CuDriver.AttributeMultiprocessorCount),
            Attribute(device, CuDriver.AttributeMaxThreadsPerBlock),
            Attribute(device, CuDriver.AttributeMaxSharedMemoryPerBlock),
            total,
            Attribute(device, CuDriver.AttributeMaxSharedMemoryPerBlockOptIn));
    }

    private static unsafe int Attribute(int device, int attribute)
    {
        int value;
        CudaCheck.Driver(CuDriver.cuDeviceGetAttribute(&value, attribute, device), "cuDeviceGetAttribute");
        return value;
    }

    public override string ToString() =>
        $"{Ordinal}: {Name} (sm_{ComputeCapability}, {MultiprocessorCount} SMs, {TotalMemory >> 20} MiB)";
}
