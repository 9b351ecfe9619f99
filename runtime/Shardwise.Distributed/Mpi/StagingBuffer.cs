using System;
using System.Runtime.InteropServices;

namespace Shardwise.Distributed.Mpi;

/// <summary>
/// Native memory that MPI reads and writes during a nonblocking call. Callers' spans cannot be handed to MPI: when
/// a call times out, its request is still pending and MPI may write into the buffer later, after the span's array
/// has been moved or reused. Staging through memory the GC does not own, and never freeing it once a call has been
/// abandoned (<see cref="Abandon"/>), makes a late write harmless.
/// </summary>
internal sealed unsafe class StagingBuffer : IDisposable
{
    private const int Alignment = 64;

    private void* _memory;
    private nuint _bytes;

    /// <summary>At least <paramref name="count"/> elements of <typeparamref name="T"/>; contents are not kept.</summary>
    public T* Get<T>(long count) where T : unmanaged
    {
        nuint bytes = (nuint)(Math.Max(count, 1) * sizeof(T));
        if (bytes > _bytes)
        {
            if (_memory is not null) NativeMemory.AlignedFree(_memory);
            _memory = NativeMemory.AlignedAlloc(bytes, Alignment);
            _bytes = bytes;
        }
        return (T*)_memory;
    }

    /// <summary>Forgets the memory without freeing it: an abandoned MPI request may still write into it.</summary>
    public void Abandon()
    {
        _memory = null;
        _bytes = 0;
    }

    public void Dispose()
    {
        if (_memory is not null) NativeMemory.AlignedFree(_memory);
        Abandon();
    }
}
