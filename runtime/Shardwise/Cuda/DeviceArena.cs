using System;

namespace Shardwise.Cuda;

/// <summary>
/// One real-valued arena of <see cref="CudaOps"/> (fp32): device memory allocated once, plus a host mirror created
/// on the first <see cref="View"/>. The mirror is synchronised lazily, in whole:
/// <list type="bullet">
/// <item><see cref="View"/> copies device → host (unless the mirror is already the newer copy) and from then on
/// treats the mirror as the newer copy, because the caller may write into the span it got;</item>
/// <item><see cref="EnsureDevice"/>, which every device operation calls first, copies a newer mirror host → device.</item>
/// </list>
/// So a span from <see cref="View"/> is valid until the next operation on the backend; read or write it, then let
/// the next operation upload it. An arena nobody views never has a mirror and never crosses the bus.
/// </summary>
internal sealed class DeviceArena : IDisposable
{
    private readonly DeviceMemory? memory; // null for an empty arena (cuMemAlloc rejects zero bytes)
    private float[]? mirror;
    private bool hostIsNewer;

    private DeviceArena(DeviceMemory? memory, long length)
    {
        this.memory = memory;
        Length = length;
    }

    /// <summary>Allocates <paramref name="elements"/> fp32 elements on the device, zeroed.</summary>
    public static DeviceArena Allocate(CudaContext context, long elements, DeviceAllocationCounter counter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        if (elements == 0) return new DeviceArena(null, 0);
        DeviceMemory memory = counter.Allocate(context, elements * sizeof(float));
        memory.Zero();
        return new DeviceArena(memory, elements);
    }

    /// <summary>Elements in the arena.</summary>
    public long Length { get; }

    /// <summary>True while the host mirror holds changes the device has not seen.</summary>
    public bool HostIsNewer => hostIsNewer;

    /// <summary>The device address of element <paramref name="offset"/>; the arena must not be empty.</summary>
    public ulong Address(long offset) =>
        (memory ?? throw new InvalidOperationException("the arena is empty")).Pointer + (ulong)(offset * sizeof(float));

    /// <summary>The host mirror, current with the device, which the caller may write (see the class comment).</summary>
    public Span<float> View()
    {
        if (Length > Array.MaxLength)
            throw new NotSupportedException($"CudaOps.View: an arena of {Length} elements has no host mirror (more than {Array.MaxLength}).");
        mirror ??= new float[Length];
        if (!hostIsNewer && memory is not null) memory.Download<float>(mirror);
        hostIsNewer = true;
        return mirror;
    }

    /// <summary>Uploads the mirror if it is newer than the device copy.</summary>
    public void EnsureDevice()
    {
        if (!hostIsNewer) return;
        if (memory is not null) memory.Upload<float>(mirror);
        hostIsNewer = false;
    }

    /// <summary>Forgets mirror changes: the caller is about to overwrite the whole arena on the device.</summary>
    public void DiscardHostChanges() => hostIsNewer = false;

    /// <summary>Copies host values to elements [offset, offset + source.Length) on the device.</summary>
    public void Upload(ReadOnlySpan<float> source, long offset)
    {
        EnsureDevice();
        if (source.Length > 0) memory!.Upload(source, offset * sizeof(float));
    }

    /// <summary>Copies elements [offset, offset + destination.Length) from the device.</summary>
    public void Download(Span<float> destination, long offset)
    {
        EnsureDevice();
        if (destination.Length > 0) memory!.Download(destination, offset * sizeof(float));
    }

    /// <summary>Zeroes elements [offset, offset + count) on the device.</summary>
    public void Zero(long offset, long count)
    {
        if (offset == 0 && count == Length) DiscardHostChanges();
        else EnsureDevice();
        if (count > 0) memory!.Zero(offset * sizeof(float), count * sizeof(float));
    }

    public void Dispose() => memory?.Dispose();
}
