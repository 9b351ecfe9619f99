using Shardwise.Cuda.Interop;

namespace Shardwise.Cuda;

/// <summary>The device's memory at one moment (cuMemGetInfo): what is free and the total, in bytes.</summary>
public readonly record struct DeviceMemoryUse(long FreeBytes, long TotalBytes)
{
    /// <summary>Bytes in use on the device by every context (this process's CUDA context and libraries included).</summary>
    public long UsedBytes => TotalBytes - FreeBytes;
}

// Device memory accounting for reports such as `bench`: the backend allocates its arenas once and its scratch only
// grows, so the memory in use sampled between steps is the run's peak (a transient inside a step would be missed, and
// there is none: operations allocate nothing beyond counted scratch growth).
public sealed partial class CudaOps
{
    private long peakDeviceBytesInUse;

    /// <summary>The largest <see cref="DeviceMemoryUse.UsedBytes"/> seen by <see cref="SampleDeviceMemory"/>.</summary>
    public long PeakDeviceBytesInUse => peakDeviceBytesInUse;

    /// <summary>
    /// Reads the device's free and total memory (cuMemGetInfo_v2, in this backend's context) and keeps the largest use
    /// seen in <see cref="PeakDeviceBytesInUse"/>. It does not wait for queued work: call it between steps.
    /// </summary>
    public unsafe DeviceMemoryUse SampleDeviceMemory()
    {
        EnsureCurrent();
        nuint free, total;
        CudaCheck.Driver(CuDriver.cuMemGetInfo(&free, &total), "cuMemGetInfo_v2");
        var use = new DeviceMemoryUse((long)free, (long)total);
        if (use.UsedBytes > peakDeviceBytesInUse) peakDeviceBytesInUse = use.UsedBytes;
        return use;
    }
}
