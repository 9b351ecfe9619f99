using System.Threading;

namespace Shardwise.Cuda;

/// <summary>
/// Every cuMemAlloc of a <see cref="CudaOps"/> goes through here, so tests can check that steady-state operations
/// allocate nothing on the device (the count stays put after the first step). The memory it allocates counts its
/// host ↔ device copies in <see cref="Traffic"/>.
/// </summary>
internal sealed class DeviceAllocationCounter
{
    private int count;
    private long bytes;

    /// <summary>Device allocations made so far.</summary>
    public int Count => Volatile.Read(ref count);

    /// <summary>Bytes of all device allocations made so far (freed ones included).</summary>
    public long Bytes => Interlocked.Read(ref bytes);

    /// <summary>The host ↔ device copies of every allocation made here.</summary>
    public HostDeviceTrafficCounter Traffic { get; } = new();

    public DeviceMemory Allocate(CudaContext context, long size)
    {
        DeviceMemory memory = DeviceMemory.Allocate(context, size);
        memory.Traffic = Traffic;
        Interlocked.Increment(ref count);
        Interlocked.Add(ref bytes, size);
        return memory;
    }
}
