using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;

namespace Shardwise.Kernels.Tests;

/// <summary>
/// CudaOps' device memory accounting (CudaOps.Memory.cs), which bench reports as the peak device memory (category
/// "Gpu": inconclusive without a GPU, run by scripts/gpu-suite.sh). Assumes no other process allocates on the device
/// meanwhile, as on the suite's dedicated machine.
/// </summary>
[TestClass]
[TestCategory("Gpu")]
public sealed class CudaMemoryTests
{
    [TestMethod]
    public void DeviceMemoryInUseFollowsAnArenaAndThePeakStays()
    {
        using CudaOps ops = GpuSupport.RequireCudaOps();
        DeviceMemoryUse before = ops.SampleDeviceMemory();
        Assert.AreEqual((long)ops.Device.TotalMemory, before.TotalBytes, "cuMemGetInfo's total is cuDeviceTotalMem's");
        Assert.IsTrue(before.FreeBytes > 0 && before.UsedBytes > 0, $"free {before.FreeBytes}, used {before.UsedBytes}");

        // 300 MiB plus an odd element count: the driver rounds allocations up to its page size (2 MiB).
        const long elements = 300L * 1024 * 1024 / sizeof(float) + 12_345;
        const long bytes = elements * sizeof(float);
        ops.Allocate(Arena.Activations, elements);
        DeviceMemoryUse allocated = ops.SampleDeviceMemory();
        long grown = allocated.UsedBytes - before.UsedBytes;
        Assert.IsTrue(grown >= bytes && grown < bytes + (64L << 20), $"in use grew by {grown} bytes for a {bytes}-byte arena");
        Assert.AreEqual(allocated.UsedBytes, ops.PeakDeviceBytesInUse);

        // Replacing the arena by a small one frees it: in use drops, the peak does not.
        ops.Allocate(Arena.Activations, 1000);
        DeviceMemoryUse shrunk = ops.SampleDeviceMemory();
        Assert.IsTrue(allocated.UsedBytes - shrunk.UsedBytes >= bytes - (4L << 20),
            $"in use fell by {allocated.UsedBytes - shrunk.UsedBytes} bytes after freeing {bytes}");
        Assert.AreEqual(allocated.UsedBytes, ops.PeakDeviceBytesInUse);
        Console.WriteLine($"device {ops.Device.Name}: {before.UsedBytes >> 20} MiB in use before, +{grown >> 20} MiB, peak {ops.PeakDeviceBytesInUse >> 20} MiB of {before.TotalBytes >> 20} MiB");
    }
}
