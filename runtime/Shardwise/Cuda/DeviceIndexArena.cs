using System;

namespace Shardwise.Cuda;

/// <summary>
/// The token-index arena of <see cref="CudaOps"/>: int32 device memory and a host copy that is always current,
/// because the only writers are <see cref="CudaOps.LoadIndices"/> (which writes both) and
/// <see cref="CudaOps.Positions"/> (which computes both). The host copy lets the backend validate ids and targets
/// before a kernel sees them (a kernel cannot throw) and build the embedding gradient's row grouping without a
/// device → host copy.
/// </summary>
internal sealed class DeviceIndexArena : IDisposable
{
    private readonly DeviceMemory? memory;

    private DeviceIndexArena(DeviceMemory? memory, int[] host)
    {
        this.memory = memory;
        Host = host;
    }

    public static DeviceIndexArena Allocate(CudaContext context, long elements, DeviceAllocationCounter counter)
    {
        if (elements < 0 || elements > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(elements), elements, $"An index arena holds between 0 and {Array.MaxLength} indices.");
        if (elements == 0) return new DeviceIndexArena(null, []);
        DeviceMemory memory = counter.Allocate(context, elements * sizeof(int));
        memory.Zero();
        return new DeviceIndexArena(memory, new int[elements]);
    }

    /// <summary>The host copy, equal to the device contents.</summary>
    public int[] Host { get; }

    public long Length => Host.Length;

    public ulong Address(long offset) =>
        (memory ?? throw new InvalidOperationException("the index arena is empty")).Pointer + (ulong)(offset * sizeof(int));

    /// <summary>Writes indices to both copies.</summary>
    public void Load(ReadOnlySpan<int> source, long offset)
    {
        source.CopyTo(Host.AsSpan((int)offset));
        if (source.Length > 0) memory!.Upload(source, offset * sizeof(int));
    }

    public void Dispose() => memory?.Dispose();
}
