using System.Diagnostics;

namespace Shardwise.Training.Progress;

/// <summary>
/// What a rank's process holds at one moment, for DeepSpeed's <c>memory_breakdown</c> (its <c>see_memory_usage</c>):
/// the host's working set and its peak, the managed heap, and on a GPU the device memory in use and its total. Set
/// beside the plan's bytes by category, it shows what the plan does not count (runtime, libraries, allocator slack).
/// </summary>
public sealed record MeasuredMemory(long WorkingSetBytes, long PeakWorkingSetBytes, long ManagedHeapBytes, long? DeviceUsedBytes, long? DeviceTotalBytes)
{
    /// <summary>This process now; <paramref name="device"/> is (used, total) from the CUDA backend, or null on the CPU.</summary>
    public static MeasuredMemory Sample((long Used, long Total)? device)
    {
        using var process = Process.GetCurrentProcess();
        return new MeasuredMemory(process.WorkingSet64, process.PeakWorkingSet64, System.GC.GetGCMemoryInfo().HeapSizeBytes, device?.Used, device?.Total);
    }

    public string Describe() =>
        $"host working set {ByteSize.Format(WorkingSetBytes)} (peak {ByteSize.Format(PeakWorkingSetBytes)}), managed heap {ByteSize.Format(ManagedHeapBytes)}" +
        (DeviceUsedBytes is { } used && DeviceTotalBytes is { } total ? $"; device in use {ByteSize.Format(used)} of {ByteSize.Format(total)}" : "");
}
