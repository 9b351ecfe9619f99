using System;
using Shardwise.Precision;

namespace Shardwise.Cuda;

/// <summary>
/// One real-valued arena of <see cref="CudaOps"/>: device memory allocated once, plus a host mirror created on the
/// first <see cref="View"/>. The host side always speaks float32; the device holds <see cref="Storage"/> elements
/// (fp32, fp16 or bf16), and every copy converts with <see cref="StorageConversion"/> (the rounding of
/// <see cref="StorageRounding"/>), on the host, so the bus carries 16-bit elements.
/// <para>
/// Addressing: element <c>offset</c> of a slice starts at byte <see cref="ElementBytes"/>·offset. The activation arena
/// (<c>holdsStatistics</c>) also holds the kernels' fp32 per-row statistics (LayerNorm mean/rstd, cross-entropy row
/// max/sum/target logit), written unconverted: in 16-bit storage one statistic spans two elements, and the generator
/// plans such slices at two elements per value (<see cref="StatisticSlots"/>), 4-byte aligned. The host cannot mirror
/// a 16-bit activation arena element by element (a statistic's halves are not 16-bit values, and a round trip through
/// floats could change a NaN-shaped half), so <see cref="View"/> refuses it; slices go through
/// <see cref="Upload"/>/<see cref="Download"/>, and statistics through <see cref="UploadFloat32"/>/<see cref="DownloadFloat32"/>.
/// </para>
/// The mirror is synchronised lazily, in whole:
/// <list type="bullet">
/// <item><see cref="View"/> copies device → host (unless the mirror is already the newer copy) and from then on
/// treats the mirror as the newer copy, because the caller may write into the span it got;</item>
/// <item><see cref="EnsureDevice"/>, which every device operation calls first, copies a newer mirror host → device.</item>
/// </list>
/// So a span from <see cref="View"/> is valid until the next operation on the backend; read or write it, then let
/// the next operation upload it. An arena nobody views never has a mirror and never crosses the bus.
/// In 16-bit storage the mirror keeps what the caller wrote (unrounded) until the next operation uploads it rounded;
/// the next <see cref="View"/> after that operation reads the rounded values back.
/// </summary>
internal sealed class DeviceArena : IDisposable
{
    /// <summary>16-bit conversions go through a host buffer of this many elements (8 MiB), whatever the copy's size.</summary>
    private const int StagingElements = 4 << 20;

    private DeviceMemory? memory; // null for an empty arena (cuMemAlloc rejects zero bytes)
    private float[]? mirror;
    private ushort[]? staging;
    private bool hostIsNewer;

    private DeviceArena(DeviceMemory? memory, long length, StorageType storage, bool holdsStatistics)
    {
        this.memory = memory;
        Length = length;
        Capacity = length;
        Storage = storage;
        ElementBytes = storage.BytesPerElement();
        HoldsStatistics = holdsStatistics;
    }

    /// <summary>
    /// Allocates <paramref name="elements"/> elements of <paramref name="storage"/> on the device, zeroed;
    /// <paramref name="holdsStatistics"/> for the activation arena, whose slices may hold fp32 statistics.
    /// </summary>
    public static DeviceArena Allocate(CudaContext context, long elements, StorageType storage, bool holdsStatistics,
        DeviceAllocationCounter counter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        if (elements == 0) return new DeviceArena(null, 0, storage, holdsStatistics);
        DeviceMemory memory = counter.Allocate(context, elements * storage.BytesPerElement());
        memory.Zero();
        return new DeviceArena(memory, elements, storage, holdsStatistics);
    }

    /// <summary>Another arena of the same length, storage and role (an activation window).</summary>
    public DeviceArena AllocateSibling(CudaContext context, DeviceAllocationCounter counter) =>
        Allocate(context, Length, Storage, HoldsStatistics, counter);

    /// <summary>Elements in the arena (slice offsets and lengths count these).</summary>
    public long Length { get; }

    /// <summary>
    /// Elements the device memory holds: <see cref="Length"/>, or more after <see cref="Reserve"/> (a zeroed tail that
    /// only whole-buffer collectives touch; the mirror and every slice stay within <see cref="Length"/>).
    /// </summary>
    public long Capacity { get; private set; }

    /// <summary>
    /// Moves the arena into device memory of at least <paramref name="capacity"/> elements, keeping its contents and a
    /// newer host mirror; the tail starts at zero. Addresses taken before are stale afterwards.
    /// </summary>
    public void Reserve(CudaContext context, DeviceAllocationCounter counter, long capacity)
    {
        if (capacity <= Capacity) return;
        DeviceMemory grown = counter.Allocate(context, capacity * ElementBytes);
        grown.Zero();
        if (memory is not null)
        {
            grown.CopyFrom(memory, Bytes);
            memory.Dispose();
        }
        memory = grown;
        Capacity = capacity;
    }

    public StorageType Storage { get; }

    /// <summary>Bytes of one stored element: 4 (fp32) or 2 (fp16, bf16).</summary>
    public int ElementBytes { get; }

    /// <summary>Whether slices of this arena may hold fp32 statistics (the activation arena).</summary>
    public bool HoldsStatistics { get; }

    /// <summary>Elements one fp32 statistic spans: 1 in fp32 storage, 2 in 16-bit.</summary>
    public int StatisticSlots => sizeof(float) / ElementBytes;

    /// <summary>Device bytes the arena occupies.</summary>
    public long Bytes => Length * ElementBytes;

    /// <summary>True when a host span can mirror the arena element for element (everything but 16-bit activations).</summary>
    public bool ElementAddressable => !HoldsStatistics || Storage == StorageType.Float32;

    /// <summary>True while the host mirror holds changes the device has not seen.</summary>
    public bool HostIsNewer => hostIsNewer;

    /// <summary>The device address of the slice that starts at <paramref name="offset"/>; the arena must not be empty.</summary>
    public ulong Address(long offset) =>
        (memory ?? throw new InvalidOperationException("the arena is empty")).Pointer + (ulong)(offset * ElementBytes);

    /// <summary>The host mirror, current with the device, which the caller may write (see the class comment).</summary>
    public Span<float> View(string arenaName)
    {
        if (!ElementAddressable)
        {
            throw new NotSupportedException(
                $"CudaOps.View({arenaName}): in {Storage} storage the activation arena also holds fp32 per-row statistics, " +
                "two 16-bit elements each, which a host span of floats cannot mirror; copy slices with Load/Store (and statistics " +
                "with LoadStatistics/StoreStatistics) instead.");
        }

        if (Length > Array.MaxLength)
            throw new NotSupportedException($"CudaOps.View: an arena of {Length} elements has no host mirror (more than {Array.MaxLength}).");
        mirror ??= new float[Length];
        if (!hostIsNewer && memory is not null) Read(mirror, 0);
        hostIsNewer = true;
        return mirror;
    }

    /// <summary>Uploads the mirror if it is newer than the device copy.</summary>
    public void EnsureDevice()
    {
        if (!hostIsNewer) return;
        if (memory is not null) Write(mirror, 0);
        hostIsNewer = false;
    }

    /// <summary>Forgets mirror changes: the caller is about to overwrite the whole arena on the device.</summary>
    public void DiscardHostChanges() => hostIsNewer = false;

    /// <summary>Rounds host values to the storage type into the slice that starts at <paramref name="offset"/>.</summary>
    public void Upload(ReadOnlySpan<float> source, long offset)
    {
        EnsureDevice();
        if (source.Length > 0) Write(source, offset);
    }

    /// <summary>Widens the slice that starts at <paramref name="offset"/> into host values.</summary>
    public void Download(Span<float> destination, long offset)
    {
        EnsureDevice();
        if (destination.Length > 0) Read(destination, offset);
    }

    /// <summary>
    /// Copies fp32 values (a per-row statistic) into the slice at <paramref name="offset"/>, unconverted: they span
    /// <see cref="StatisticSlots"/> elements each.
    /// </summary>
    public void UploadFloat32(ReadOnlySpan<float> source, long offset)
    {
        RequireStatistics(offset);
        EnsureDevice();
        if (source.Length > 0) memory!.Upload(source, offset * ElementBytes);
    }

    /// <summary>Copies the fp32 values (a per-row statistic) of the slice at <paramref name="offset"/>, unconverted.</summary>
    public void DownloadFloat32(Span<float> destination, long offset)
    {
        RequireStatistics(offset);
        EnsureDevice();
        if (destination.Length > 0) memory!.Download(destination, offset * ElementBytes);
    }

    /// <summary>
    /// Queues a copy of elements [offset, offset + count) into pinned host memory at element
    /// <paramref name="hostOffset"/> (same element size), on <paramref name="stream"/>, which the caller orders with
    /// the kernels.
    /// </summary>
    public void StashTo(PinnedHostMemory host, long hostOffset, long offset, long count, CudaStream stream)
    {
        EnsureDevice();
        if (count > 0) memory!.DownloadAsync(host, count * ElementBytes, stream, offset * ElementBytes, hostOffset * ElementBytes);
    }

    /// <summary>The reverse of <see cref="StashTo"/>: pinned host elements back into [offset, offset + count), queued.</summary>
    public void RestoreFrom(PinnedHostMemory host, long hostOffset, long offset, long count, CudaStream stream)
    {
        EnsureDevice();
        if (count > 0) memory!.UploadAsync(host, count * ElementBytes, stream, hostOffset * ElementBytes, offset * ElementBytes);
    }

    /// <summary>
    /// Zeroes elements [offset, offset + count): every byte of their range, so a slice reads as zero both as a
    /// stored tensor and as fp32 statistics.
    /// </summary>
    public void Zero(long offset, long count)
    {
        if (offset == 0 && count == Length) DiscardHostChanges();
        else EnsureDevice();
        if (count > 0) memory!.Zero(offset * ElementBytes, count * ElementBytes);
    }

    private void RequireStatistics(long offset)
    {
        if (!HoldsStatistics && Storage != StorageType.Float32)
            throw new InvalidOperationException($"fp32 statistics live in the activation arena; this {Storage} arena holds parameters or gradients.");
        if (offset * ElementBytes % sizeof(float) != 0)
            throw new ArgumentException($"fp32 statistics start at a 4-byte boundary: element {offset} of a {Storage} arena does not.");
    }

    private void Write(ReadOnlySpan<float> source, long offset)
    {
        long byteOffset = offset * ElementBytes;
        if (Storage == StorageType.Float32)
        {
            memory!.Upload(source, byteOffset);
            return;
        }

        Span<ushort> bits = Staging(source.Length);
        for (int done = 0; done < source.Length; done += bits.Length)
        {
            int count = Math.Min(bits.Length, source.Length - done);
            StorageConversion.Narrow(source.Slice(done, count), bits[..count], Storage);
            memory!.Upload<ushort>(bits[..count], byteOffset + (long)done * ElementBytes);
        }
    }

    private void Read(Span<float> destination, long offset)
    {
        long byteOffset = offset * ElementBytes;
        if (Storage == StorageType.Float32)
        {
            memory!.Download(destination, byteOffset);
            return;
        }

        Span<ushort> bits = Staging(destination.Length);
        for (int done = 0; done < destination.Length; done += bits.Length)
        {
            int count = Math.Min(bits.Length, destination.Length - done);
            memory!.Download(bits[..count], byteOffset + (long)done * ElementBytes);
            StorageConversion.Widen(bits[..count], destination.Slice(done, count), Storage);
        }
    }

    /// <summary>The conversion buffer: as long as the copy, at most <see cref="StagingElements"/>; kept for reuse.</summary>
    private Span<ushort> Staging(int elements)
    {
        int wanted = Math.Clamp(elements, 1, StagingElements);
        if (staging is null || staging.Length < wanted) staging = new ushort[Math.Max(wanted, Math.Min(2 * (staging?.Length ?? 0), StagingElements))];
        return staging;
    }

    public void Dispose() => memory?.Dispose();
}
