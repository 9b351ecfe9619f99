using System;

namespace Shardwise.Cuda;

/// <summary>
/// Device working memory of one kind (LayerNorm or bias partial sums, attention score gradients, per-row losses, the
/// embedding gradient's row grouping) that grows to the largest request and then stays: after the first step of a
/// given shape no operation allocates. Growth doubles, so a sequence of rising sizes costs few allocations; each one
/// is counted in <see cref="Growths"/>. Growing frees the old buffer, which the driver does only after queued work
/// that reads it has finished (cuMemFree synchronises).
/// </summary>
internal sealed class DeviceScratch(CudaContext context, DeviceAllocationCounter counter, string purpose) : IDisposable
{
    private DeviceMemory? memory;

    public string Purpose { get; } = purpose;

    /// <summary>How many times this scratch was (re)allocated.</summary>
    public int Growths { get; private set; }

    public long Bytes => memory?.Bytes ?? 0;

    /// <summary>The address of at least <paramref name="bytes"/> bytes of scratch (contents undefined).</summary>
    public ulong Ensure(long bytes)
    {
        bytes = Math.Max(bytes, 1);
        if (memory is null || memory.Bytes < bytes)
        {
            long size = Math.Max(bytes, 2 * (memory?.Bytes ?? 0));
            memory?.Dispose();
            memory = counter.Allocate(context, size);
            Growths++;
        }

        return memory.Pointer;
    }

    /// <summary>The scratch memory itself (after <see cref="Ensure"/>), for copies.</summary>
    public DeviceMemory Memory => memory ?? throw new InvalidOperationException($"{Purpose} scratch was never sized");

    public void Dispose() => memory?.Dispose();
}
